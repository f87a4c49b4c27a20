// The gRPC channel to sluice-controller. With a node credential folder (node-key.pem,
// node-cert.pem, root-cert.pem from `sluice-controller node-credential`) it is mTLS to the
// controller's secure port: the node proves who it is, and the controller must present a
// certificate from the same root naming "sluice-controller". Without one it is plaintext (the
// controller's 15010), and the node gets configuration but no certificates.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "sluice/common/error.h"

namespace sluice::ztunnel {

Result<std::shared_ptr<grpc::Channel>> controllerChannel(const std::string& address, const std::string& credentialDir);

}  // namespace sluice::ztunnel
