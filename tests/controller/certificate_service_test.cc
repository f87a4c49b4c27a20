// The CA over gRPC mTLS, as nodes use it: the controller's CertificateService on a loopback
// port with client certificates required, and the tunnel's own CertificateManager and
// controllerChannel as the client, with node credentials from the CA.
#include "ca/certificate_service.h"

#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "identity/certificate_manager.h"
#include "identity/controller_channel.h"
#include "sluice/common/pki.h"

namespace sluice::controller {
namespace {

namespace fs = std::filesystem;
constexpr const char* kWeb = "spiffe://cluster.local/ns/shop/sa/web";
constexpr const char* kDb = "spiffe://cluster.local/ns/shop/sa/db";

class CertificateServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/ca_service_test_" + std::to_string(::getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_ + "/config");
    std::ofstream(dir_ + "/config/w.yaml")
        << "apiVersion: sluice.io/v1alpha1\nkind: Workload\nmetadata: {name: web-0, namespace: shop}\n"
           "spec: {serviceAccount: web, node: node1, addresses: [10.244.1.2]}\n---\n"
           "apiVersion: sluice.io/v1alpha1\nkind: Workload\nmetadata: {name: db-0, namespace: shop}\n"
           "spec: {serviceAccount: db, node: node2, addresses: [10.244.2.2]}\n";
    ASSERT_TRUE(store_.refresh(dir_ + "/config"));
    auto ca = CertificateAuthority::openOrCreate(dir_ + "/ca", "cluster.local");
    ASSERT_TRUE(ca);
    ca_ = std::move(*ca);
    CertificatePolicy policy;
    policy.minValidity = std::chrono::seconds(2);  // lets the rotation test run in seconds
    service_ = std::make_unique<CertificateService>(*ca_, store_, policy);
    auto serving = ca_->issueKeyPair({"DNS:sluice-controller"}, std::chrono::hours(1));
    ASSERT_TRUE(serving);
    grpc::SslServerCredentialsOptions options(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    options.pem_root_certs = ca_->rootCertificatePem();
    options.pem_key_cert_pairs.push_back({serving->privateKeyPem, serving->certificate.certificatePem});
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(options), &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_TRUE(server_ && port_ > 0);
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
    fs::remove_all(dir_);
  }
  // A node credential folder, as `sluice-controller node-credential` writes it.
  std::string nodeCredential(const std::string& node, CertificateAuthority& ca) {
    std::string out = dir_ + "/cred-" + node;
    fs::create_directories(out);
    auto pair = ca.issueKeyPair({"URI:" + nodeIdentityFor("cluster.local", node)}, std::chrono::hours(1));
    EXPECT_TRUE(pair);
    EXPECT_TRUE(pki::writeFileAtomically(out + "/node-key.pem", pair->privateKeyPem, 0600));
    EXPECT_TRUE(pki::writeFileAtomically(out + "/node-cert.pem", pair->certificate.certificatePem, 0644));
    EXPECT_TRUE(pki::writeFileAtomically(out + "/root-cert.pem", ca_->rootCertificatePem(), 0644));
    return out;
  }
  grpc::Status request(const std::string& credentialDir, const std::string& identity, ca::v1::CertificateResponse* out) {
    auto channel = ztunnel::controllerChannel("127.0.0.1:" + std::to_string(port_), credentialDir);
    EXPECT_TRUE(channel);
    auto key = pki::generateP256Key();
    ca::v1::CertificateRequest req;
    req.set_csr(*pki::makeCsr(key->get(), identity));
    req.set_identity(identity);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return ca::v1::CertificateService::NewStub(*channel)->CreateCertificate(&context, req, out);
  }

  std::string dir_;
  ConfigStore store_;
  std::unique_ptr<CertificateAuthority> ca_;
  std::unique_ptr<CertificateService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(CertificateServiceTest, NodeGetsCertificatesOnlyForItsOwnWorkloads) {
  std::string node1 = nodeCredential("node1", *ca_);
  ca::v1::CertificateResponse response;
  grpc::Status ok = request(node1, kWeb, &response);
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  ASSERT_EQ(response.cert_chain_size(), 1);
  auto cert = pki::parseCertificate(response.cert_chain(0));
  ASSERT_TRUE(cert);
  EXPECT_EQ(pki::uriSans(cert->get()), std::vector<std::string>{kWeb});
  EXPECT_EQ(response.root_cert(), ca_->rootCertificatePem());
  EXPECT_EQ(response.serial(), pki::serialHex(cert->get()));

  grpc::Status refused = request(node1, kDb, &response);  // db runs on node2
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(refused.error_message().find("node node1 runs no workload with identity " + std::string(kDb)), std::string::npos)
      << refused.error_message();
  EXPECT_EQ(service_->issued(), 1u);
  EXPECT_EQ(service_->refused(), 1u);
}

TEST_F(CertificateServiceTest, CallersWithoutAValidNodeCredentialAreRefused) {
  ca::v1::CertificateResponse response;
  // No client certificate at all: the TLS handshake itself fails.
  auto plain = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_), grpc::InsecureChannelCredentials());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  ca::v1::CertificateRequest req;
  EXPECT_FALSE(ca::v1::CertificateService::NewStub(plain)->CreateCertificate(&context, req, &response).ok());
  // A node credential from another CA: refused in the handshake.
  auto other = CertificateAuthority::openOrCreate(dir_ + "/other-ca", "cluster.local");
  ASSERT_TRUE(other);
  std::string forged = nodeCredential("node1", **other);
  EXPECT_FALSE(request(forged, kWeb, &response).ok());
  EXPECT_EQ(service_->issued(), 0u);
}

TEST_F(CertificateServiceTest, CertificateManagerFetchesAndRotatesAtHalfLife) {
  std::string node1 = nodeCredential("node1", *ca_);
  auto channel = ztunnel::controllerChannel("127.0.0.1:" + std::to_string(port_), node1);
  ASSERT_TRUE(channel);
  ztunnel::CertificateManager::Options options;
  options.requestedValidity = std::chrono::seconds(2);
  ztunnel::CertificateManager manager(*channel, options);
  std::atomic<bool> stopping{false};
  std::thread runner([&] { manager.run(stopping); });
  manager.want(kWeb);
  manager.want(kDb);  // not on node1: refused, retried with backoff, never present
  std::shared_ptr<const ztunnel::WorkloadCertificate> first;
  for (int i = 0; i < 100 && !first; ++i) {
    first = manager.get(kWeb);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(first);
  EXPECT_EQ(first->identity, kWeb);
  EXPECT_EQ(first->notAfter - first->notBefore, std::chrono::seconds(2 + 60));  // 2 s + a minute of clock slack
  EXPECT_EQ(manager.get(kDb), nullptr);
  // Half of 2 s later a new certificate (new key, new serial) replaces it; the old one stays
  // usable by whoever holds it (connections made with it live on).
  std::shared_ptr<const ztunnel::WorkloadCertificate> second;
  for (int i = 0; i < 100; ++i) {
    second = manager.get(kWeb);
    if (second && second->serial != first->serial) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(second);
  EXPECT_NE(second->serial, first->serial);
  EXPECT_NE(second->chainPem, first->chainPem);
  EXPECT_TRUE(first->serverContext);
  auto status = manager.describe();
  ASSERT_EQ(status.size(), 2u);
  bool dbRefused = false;
  for (const auto& s : status) dbRefused = dbRefused || (s.identity == kDb && s.failures > 0 && s.lastError.find("node node1 runs no workload") != std::string::npos);
  EXPECT_TRUE(dbRefused);
  stopping = true;
  runner.join();
}

}  // namespace
}  // namespace sluice::controller
