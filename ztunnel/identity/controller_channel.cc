#include "identity/controller_channel.h"

#include "sluice/common/pki.h"

namespace sluice::ztunnel {

Result<std::shared_ptr<grpc::Channel>> controllerChannel(const std::string& address, const std::string& credentialDir) {
  if (credentialDir.empty()) return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  grpc::SslCredentialsOptions options;
  SLUICE_TRY_ASSIGN(root, pki::readFile(credentialDir + "/root-cert.pem"));
  SLUICE_TRY_ASSIGN(key, pki::readFile(credentialDir + "/node-key.pem"));
  SLUICE_TRY_ASSIGN(cert, pki::readFile(credentialDir + "/node-cert.pem"));
  SLUICE_TRY(pki::parseCertificates(root), credentialDir + "/root-cert.pem");
  SLUICE_TRY(pki::parsePrivateKey(key), credentialDir + "/node-key.pem");
  SLUICE_TRY(pki::parseCertificates(cert), credentialDir + "/node-cert.pem");
  options.pem_root_certs = root;
  options.pem_private_key = key;
  options.pem_cert_chain = cert;
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("sluice-controller");
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(options), args);
}

}  // namespace sluice::ztunnel
