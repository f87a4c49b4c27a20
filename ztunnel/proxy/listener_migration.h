// The program that lets a successor tunnel take over a pod's listeners without a reset
// (bpf/sluice_reuseport.bpf.c). Every listener the tunnel opens in a pod shares its port with
// the next tunnel's (SO_REUSEPORT); with this program attached to the port's group, closing the
// old tunnel's listener moves the connections waiting in its accept queue (and the handshakes
// in progress) to the successor's listener instead of resetting them. Loaded once per tunnel;
// the descriptor goes into ListenOptions::reuseportProgram.
#pragma once

#include <memory>

#include "sluice/common/error.h"

struct sluice_reuseport;

namespace sluice::ztunnel {

class ListenerMigration {
 public:
  // Needs CAP_BPF (the tunnel declares it).
  static Result<ListenerMigration> load();
  int programFd() const;

 private:
  struct Deleter {
    void operator()(sluice_reuseport* skeleton) const;
  };
  std::unique_ptr<sluice_reuseport, Deleter> skeleton_;
};

}  // namespace sluice::ztunnel
