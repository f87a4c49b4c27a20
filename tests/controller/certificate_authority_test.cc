// The CA, checked with the independent openssl command line: keys and CSRs are made by
// openssl, certificates verified by openssl.
#include "ca/certificate_authority.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "sluice/common/process.h"

namespace sluice::controller {
namespace {

namespace fs = std::filesystem;

class CertificateAuthorityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/ca_test_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A P-256 key and a CSR for `uri` (none when empty), made by openssl.
  std::string csr(const std::string& uri, const std::string& curve = "prime256v1") {
    std::string key = dir_ + "/w.key", req = dir_ + "/w.csr";
    EXPECT_TRUE(runChecked({.argv = {"openssl", "ecparam", "-name", curve, "-genkey", "-noout", "-out", key}}));
    std::vector<std::string> argv = {"openssl", "req", "-new", "-key", key, "-subj", "/", "-out", req};
    if (!uri.empty()) argv.insert(argv.end(), {"-addext", "subjectAltName=URI:" + uri});
    auto made = runChecked({.argv = argv});
    EXPECT_TRUE(made) << (made ? "" : made.error().message());
    return read(req);
  }
  std::string read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name) << text;
    return dir_ + "/" + name;
  }

  std::string dir_;
};

constexpr const char* kId = "spiffe://cluster.local/ns/shop/sa/web";

TEST_F(CertificateAuthorityTest, IssuesAVerifiableSpiffeCertificate) {
  auto ca = CertificateAuthority::openOrCreate(dir_ + "/ca", "cluster.local");
  ASSERT_TRUE(ca) << ca.error().message();
  auto issued = (*ca)->sign(csr(kId), kId, std::chrono::hours(24));
  ASSERT_TRUE(issued) << issued.error().message();
  std::string root = write("root.pem", (*ca)->rootCertificatePem());
  std::string cert = write("cert.pem", issued->certificatePem);
  auto verify = run({.argv = {"openssl", "verify", "-CAfile", root, "-purpose", "sslclient", cert}});
  ASSERT_TRUE(verify);
  EXPECT_EQ(verify->exitCode, 0) << verify->out << verify->err;
  auto text = runChecked({.argv = {"openssl", "x509", "-in", cert, "-noout", "-text"}});
  ASSERT_TRUE(text);
  EXPECT_NE(text->out.find(std::string("URI:") + kId), std::string::npos) << text->out;
  EXPECT_NE(text->out.find("TLS Web Server Authentication, TLS Web Client Authentication"), std::string::npos);
  EXPECT_NE(text->out.find("CA:FALSE"), std::string::npos);
  EXPECT_FALSE(issued->serialHex.empty());
  auto left = issued->notAfter - std::chrono::system_clock::now();
  EXPECT_GT(left, std::chrono::hours(23));
  EXPECT_LE(left, std::chrono::hours(24));
}

TEST_F(CertificateAuthorityTest, TheRootPersistsAndItsKeyIsPrivate) {
  auto first = CertificateAuthority::openOrCreate(dir_ + "/ca", "cluster.local");
  ASSERT_TRUE(first) << first.error().message();
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/ca/root-key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto second = CertificateAuthority::openOrCreate(dir_ + "/ca", "cluster.local");
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_EQ((*first)->rootCertificatePem(), (*second)->rootCertificatePem());
  // A certificate from the reopened CA verifies against the first root.
  auto issued = (*second)->sign(csr(kId), kId);
  ASSERT_TRUE(issued);
  auto verify = run({.argv = {"openssl", "verify", "-CAfile", write("root.pem", (*first)->rootCertificatePem()),
                              write("cert.pem", issued->certificatePem)}});
  ASSERT_TRUE(verify);
  EXPECT_EQ(verify->exitCode, 0) << verify->err;
}

TEST_F(CertificateAuthorityTest, ACertificateFromAnotherCaDoesNotVerify) {
  auto ours = CertificateAuthority::openOrCreate(dir_ + "/ours", "cluster.local");
  auto theirs = CertificateAuthority::openOrCreate(dir_ + "/theirs", "cluster.local");
  ASSERT_TRUE(ours && theirs);
  auto issued = (*theirs)->sign(csr(kId), kId);
  ASSERT_TRUE(issued);
  auto verify = run({.argv = {"openssl", "verify", "-CAfile", write("root.pem", (*ours)->rootCertificatePem()),
                              write("cert.pem", issued->certificatePem)}});
  ASSERT_TRUE(verify);
  EXPECT_NE(verify->exitCode, 0);
}

TEST_F(CertificateAuthorityTest, RefusesBadRequests) {
  auto ca = CertificateAuthority::openOrCreate(dir_ + "/ca", "cluster.local");
  ASSERT_TRUE(ca);
  auto other = (*ca)->sign(csr("spiffe://cluster.local/ns/shop/sa/admin"), kId);
  ASSERT_FALSE(other);
  EXPECT_NE(other.error().message().find("asks for spiffe://cluster.local/ns/shop/sa/admin"), std::string::npos)
      << other.error().message();
  auto garbage = (*ca)->sign("-----BEGIN CERTIFICATE REQUEST-----\nnope\n-----END CERTIFICATE REQUEST-----\n", kId);
  ASSERT_FALSE(garbage);
  EXPECT_NE(garbage.error().message().find("not a PEM certificate request"), std::string::npos) << garbage.error().message();
  auto wrongCurve = (*ca)->sign(csr(kId, "secp384r1"), kId);
  ASSERT_FALSE(wrongCurve);
  EXPECT_NE(wrongCurve.error().message().find("ECDSA P-256"), std::string::npos);
  // A CSR whose signature was tampered with.
  std::string request = csr(kId);
  size_t body = request.find('\n') + 1;
  request[body + 200] = request[body + 200] == 'A' ? 'B' : 'A';
  auto tampered = (*ca)->sign(request, kId);
  EXPECT_FALSE(tampered);
}

TEST(IdentityAllowedForNode, OnlyIdentitiesOfWorkloadsOnThatNode) {
  ConfigSet config;
  ASSERT_TRUE(loadConfigText("w.yaml",
                             "apiVersion: sluice.io/v1alpha1\nkind: Workload\nmetadata: {name: web-0, namespace: shop}\n"
                             "spec: {serviceAccount: web, node: node1, addresses: [10.244.1.2]}\n",
                             config));
  EXPECT_TRUE(identityAllowedForNode(config, "cluster.local", "node1", kId));
  auto otherNode = identityAllowedForNode(config, "cluster.local", "node0", kId);
  ASSERT_FALSE(otherNode);
  EXPECT_NE(otherNode.error().message().find("node node0 runs no workload with identity"), std::string::npos);
  EXPECT_NE(otherNode.error().message().find("(other nodes do)"), std::string::npos) << otherNode.error().message();
  auto unknown = identityAllowedForNode(config, "cluster.local", "node1", "spiffe://cluster.local/ns/shop/sa/admin");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message().find("(no known workload has it yet)"), std::string::npos) << unknown.error().message();
  EXPECT_FALSE(identityAllowedForNode(config, "cluster.local", "node1", "spiffe://evil.local/ns/shop/sa/web"));
}

}  // namespace
}  // namespace sluice::controller
