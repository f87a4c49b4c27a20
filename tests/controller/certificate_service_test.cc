// The CA over gRPC mTLS, as nodes use it: the controller's CertificateService on a loopback
// port with client certificates required, and the tunnel's own CertificateManager and
// ControllerLink as the client, with node credentials from the CA: workload certificates, node
// credential renewal, revocation.
#include "ca/certificate_service.h"

#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "identity/certificate_manager.h"
#include "identity/controller_link.h"
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
    revocations_ = std::make_unique<RevocationFile>(revocationFileIn(dir_ + "/ca"));
    ASSERT_TRUE(revocations_->load());
    service_ = std::make_unique<CertificateService>(*ca_, store_, policy, revocations_.get());
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
  std::string nodeCredential(const std::string& node, CertificateAuthority& ca,
                             std::chrono::seconds validity = std::chrono::hours(1), const std::string& suffix = "") {
    std::string out = dir_ + "/cred-" + node + suffix;
    fs::create_directories(out);
    auto pair = ca.issueKeyPair({"URI:" + nodeIdentityFor("cluster.local", node)}, validity);
    EXPECT_TRUE(pair);
    EXPECT_TRUE(pki::writeFileAtomically(out + "/node-key.pem", pair->privateKeyPem, 0600));
    EXPECT_TRUE(pki::writeFileAtomically(out + "/node-cert.pem", pair->certificate.certificatePem, 0644));
    EXPECT_TRUE(pki::writeFileAtomically(out + "/root-cert.pem", ca_->rootCertificatePem(), 0644));
    return out;
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  grpc::Status request(const std::string& credentialDir, const std::string& identity, ca::v1::CertificateResponse* out) {
    auto link = ztunnel::ControllerLink::open(address(), credentialDir);
    EXPECT_TRUE(link) << link.error().message();
    if (!link) return grpc::Status(grpc::StatusCode::INTERNAL, "no link");
    return request((*link)->channel(), identity, out);
  }
  grpc::Status request(std::shared_ptr<grpc::Channel> channel, const std::string& identity, ca::v1::CertificateResponse* out) {
    auto key = pki::generateP256Key();
    ca::v1::CertificateRequest req;
    req.set_csr(*pki::makeCsr(key->get(), identity));
    req.set_identity(identity);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return ca::v1::CertificateService::NewStub(channel)->CreateCertificate(&context, req, out);
  }
  grpc::Status renew(const std::string& credentialDir, ca::v1::CertificateResponse* out) {
    auto link = ztunnel::ControllerLink::open(address(), credentialDir);
    EXPECT_TRUE(link) << link.error().message();
    if (!link) return grpc::Status(grpc::StatusCode::INTERNAL, "no link");
    auto key = pki::generateP256Key();
    ca::v1::NodeCredentialRequest req;
    auto files = ztunnel::readNodeCredential(credentialDir);
    req.set_csr(*pki::makeCsr(key->get(), files->identity));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return ca::v1::CertificateService::NewStub((*link)->channel())->RenewNodeCredential(&context, req, out);
  }
  void revoke(const std::string& node) {
    auto list = revocations_->current()->with(node, std::chrono::system_clock::now());
    ASSERT_TRUE(pki::writeFileAtomically(revocations_->path(), list.serialize(), 0644));
    for (int i = 0; i < 20 && !revocations_->refresh(); ++i) {
      // The modification time may not have moved within the file system's granularity.
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      fs::last_write_time(revocations_->path(), fs::file_time_type::clock::now());
    }
    ASSERT_FALSE(revocations_->current()->check(node, std::chrono::system_clock::now()));
  }

  std::string dir_;
  ConfigStore store_;
  std::unique_ptr<CertificateAuthority> ca_;
  std::unique_ptr<RevocationFile> revocations_;
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
  EXPECT_EQ(pki::issuedToNode(cert->get()), "node1") << "the node it went to, for revocation";
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
  auto link = ztunnel::ControllerLink::open(address(), node1);
  ASSERT_TRUE(link);
  ztunnel::CertificateManager::Options options;
  options.requestedValidity = std::chrono::seconds(2);
  ztunnel::CertificateManager manager((*link)->source(), options);
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

TEST_F(CertificateServiceTest, TheLinkRenewsTheNodeCredentialAtHalfLifeAndWritesItBack) {
  // Issued for 4 s: due for renewal 2 s after issue.
  std::string node1 = nodeCredential("node1", *ca_, std::chrono::seconds(4));
  auto before = ztunnel::readNodeCredential(node1);
  ASSERT_TRUE(before);
  auto link = ztunnel::ControllerLink::open(address(), node1);
  ASSERT_TRUE(link) << link.error().message();
  std::atomic<bool> stopping{false};
  std::thread runner([&] { (*link)->run(stopping); });
  std::optional<ztunnel::NodeCredentialStatus> status;
  for (int i = 0; i < 100; ++i) {
    status = (*link)->credential();
    if (status && status->renewals > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  stopping = true;
  runner.join();
  ASSERT_TRUE(status);
  ASSERT_EQ(status->renewals, 1u) << status->lastError;
  EXPECT_EQ(status->identity, nodeIdentityFor("cluster.local", "node1"));
  EXPECT_NE(status->serial, before->serial);
  // The CA's renewal lifetime (CertificatePolicy's default, 24 h), not the bootstrap's 4 s.
  EXPECT_EQ(status->notAfter - status->notBefore, std::chrono::hours(24) + std::chrono::seconds(60));
  // Written back: a restart starts from it; the previous key is kept for a cut-short renewal.
  auto after = ztunnel::readNodeCredential(node1);
  ASSERT_TRUE(after) << after.error().message();
  EXPECT_EQ(after->serial, status->serial);
  EXPECT_NE(after->keyPem, before->keyPem);
  EXPECT_EQ(*pki::readFile(node1 + "/node-key.pem.previous"), before->keyPem);
  EXPECT_EQ(fs::status(node1 + "/node-key.pem").permissions() & fs::perms::others_read, fs::perms::none);
  // And the renewed credential works on the mTLS port.
  ca::v1::CertificateResponse response;
  grpc::Status ok = request((*link)->channel(), kWeb, &response);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
}

TEST_F(CertificateServiceTest, ARenewalCutShortBetweenKeyAndCertificateStillReadsAsAPair) {
  std::string node1 = nodeCredential("node1", *ca_);
  auto old = ztunnel::readNodeCredential(node1);
  ASSERT_TRUE(old);
  std::string other = nodeCredential("node1", *ca_, std::chrono::hours(1), "-next");
  // The previous key written, then the new key, then the process died before the certificate.
  ASSERT_TRUE(pki::writeFileAtomically(node1 + "/node-key.pem.previous", old->keyPem, 0600));
  ASSERT_TRUE(pki::writeFileAtomically(node1 + "/node-key.pem", *pki::readFile(other + "/node-key.pem"), 0600));
  auto read = ztunnel::readNodeCredential(node1);
  ASSERT_TRUE(read) << read.error().message();
  EXPECT_EQ(read->serial, old->serial);
  EXPECT_EQ(read->keyPem, old->keyPem);
  // Without the previous key the mismatch is an error naming the folder.
  fs::remove(node1 + "/node-key.pem.previous");
  auto refused = ztunnel::readNodeCredential(node1);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("the key does not belong to the certificate"), std::string::npos)
      << refused.error().message();
  EXPECT_NE(refused.error().message().find(node1), std::string::npos);
}

TEST_F(CertificateServiceTest, ARevokedNodeGetsNoCertificateAndNoRenewalUntilReadmitted) {
  std::string node1 = nodeCredential("node1", *ca_);
  ca::v1::CertificateResponse response;
  ASSERT_TRUE(request(node1, kWeb, &response).ok());
  ASSERT_TRUE(renew(node1, &response).ok());
  revoke("node1");
  grpc::Status refused = request(node1, kWeb, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(refused.error_message().find("node node1 was revoked"), std::string::npos) << refused.error_message();
  grpc::Status notRenewed = renew(node1, &response);
  EXPECT_EQ(notRenewed.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(notRenewed.error_message().find("node node1 was revoked"), std::string::npos) << notRenewed.error_message();
  // Another node is unaffected.
  std::string node2 = nodeCredential("node2", *ca_);
  EXPECT_TRUE(request(node2, kDb, &response).ok());
  // Re-admitted: a credential issued after the revocation (a later second) is honoured.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  std::string readmitted = nodeCredential("node1", *ca_, std::chrono::hours(1), "-readmitted");
  grpc::Status ok = request(readmitted, kWeb, &response);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
}

TEST_F(CertificateServiceTest, ARenewalAsksOnlyForTheCallersOwnIdentity) {
  std::string node1 = nodeCredential("node1", *ca_);
  auto link = ztunnel::ControllerLink::open(address(), node1);
  ASSERT_TRUE(link);
  auto key = pki::generateP256Key();
  ca::v1::NodeCredentialRequest req;
  req.set_csr(*pki::makeCsr(key->get(), nodeIdentityFor("cluster.local", "node2")));
  ca::v1::CertificateResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Status refused = ca::v1::CertificateService::NewStub((*link)->channel())->RenewNodeCredential(&context, req, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(refused.error_message().find("may only get spiffe://cluster.local/sluice/node/node1"), std::string::npos)
      << refused.error_message();
}

TEST(NodeCredentialRenewAt, HalfOfTheLifetimeFromIssue) {
  using namespace std::chrono;
  system_clock::time_point issued{seconds(1'800'000'000)};
  struct Case {
    const char* name;
    seconds lifetime;
    seconds expectedAfterIssue;
  } cases[] = {
      {"a day", hours(24), hours(12)},
      {"ten seconds", seconds(10), seconds(5)},
      {"an hour", hours(1), minutes(30)},
  };
  for (const auto& c : cases) {
    auto at = ztunnel::nodeCredentialRenewAt(issued - pki::kNotBeforeBackdate, issued + c.lifetime);
    EXPECT_EQ(duration_cast<seconds>(at - issued), c.expectedAfterIssue) << c.name;
  }
  // A notAfter before the issue time: renew at once (never wait on a broken lifetime).
  EXPECT_EQ(ztunnel::nodeCredentialRenewAt(issued, issued - seconds(5)), issued);
}

}  // namespace
}  // namespace sluice::controller
