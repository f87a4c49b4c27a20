// Whether a connection arriving for a pod may reach its app, as a pure function of the request,
// the pod and the configuration snapshot (the worker carries the verdict out):
//   - over HBONE the CONNECT target must be one of this pod's own addresses, on a port that is
//     not the tunnel's (never an open relay), else 400;
//   - plaintext (15006) is refused when PeerAuthentication makes the port STRICT;
//   - then AuthorizationPolicy: denied is 401 over HBONE, a reset for plaintext.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "authz/authorization.h"
#include "authz/peer_authentication.h"
#include "proxy/config_snapshot.h"
#include "sluice/common/socket_address.h"

namespace sluice::ztunnel {

struct InboundRequest {
  bool hbone = false;
  std::string peerIdentity;  // verified SPIFFE ID ("" for plaintext)
  std::string sourceIp;      // the connection's source address
  std::string target;        // HBONE: the CONNECT authority as received; plaintext: "ip:port"
};

struct InboundPod {
  std::string ns;
  std::vector<std::string> addresses;
  // The node agent's labels for the pod: policy is selected by them when the configuration does
  // not list the pod's address (yet), so label-selected STRICT or DENY never fails open.
  std::map<std::string, std::string> labels;
};

struct InboundDecision {
  enum class Verdict { kAllow, kMalformed, kPlaintextRefused, kDenied } verdict = Verdict::kAllow;
  SocketAddress target;  // kAllow: where the app listens
  std::string policy;    // the policy that decided, if one did
  std::string reason;
  int httpStatus() const;  // HBONE answer: 200, 400 or 401
};

InboundDecision decideInbound(const InboundRequest& request, const InboundPod& pod, const ConfigSnapshot& config);

}  // namespace sluice::ztunnel
