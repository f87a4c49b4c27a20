// Ownership of simulation runs. Every object a run creates (network namespaces, cgroups, bpffs
// pins, IPAM state) carries the run's prefix, and the run's state folder records which process
// owns it. A run whose owner is gone (killed, crashed) is a stale run: the next simulation to
// start removes all of its objects, so a kill -9 never leaves the machine dirty for long.
//
// Invariant: a run's state folder exists (with its owner file) before any other object of the
// run is created, and is removed only after all of them are gone. So an object whose prefix has
// no state folder belongs to a dead run.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "sluice/common/error.h"

namespace sluice::sim {

// Where the simulation keeps its objects on this machine.
struct SimPaths {
  std::string stateRoot;   // /run/sluice-sim: one folder per run (owner, IPAM state)
  std::string netnsDir;    // /run/netns: named network namespaces, "<prefix>-..."
  std::string cgroupRoot;  // <cgroup2>/sluice-sim: one subtree per run
  std::string bpffsRoot;   // <bpffs>/sluice-sim: one folder of pins per run
};

// Detects cgroup2 and bpffs (mounting bpffs if needed) and creates the roots.
Result<SimPaths> detectSimPaths();

// A run prefix: "slc" and five hex digits. Short, because it becomes part of interface-related
// names, and recognisable, so leftovers are unmistakably ours.
std::string newRunPrefix();
bool isRunPrefix(std::string_view text);
// The run prefix an object name starts with ("slc1a2b3-node0" -> "slc1a2b3"), if any.
std::optional<std::string> runPrefixOf(std::string_view name);

// Start time of a process in clock ticks (field 22 of /proc/<pid>/stat), which together with the
// pid identifies a process even after its pid is reused.
std::optional<unsigned long long> startTimeFromStat(std::string_view statText);

// Claims `prefix` for this process: creates its state folder and owner file atomically.
Status claimRun(const SimPaths& paths, const std::string& prefix);

// Removes every object of the run `prefix`: kills its processes, deletes its namespaces,
// cgroups, pins and state. Idempotent; continues past failures and reports the first.
Status removeRun(const SimPaths& paths, const std::string& prefix);

// Every run prefix that has objects on this machine, live or not.
std::vector<std::string> listRuns(const SimPaths& paths);

// Whether the run's owner process still lives.
bool runIsLive(const SimPaths& paths, const std::string& prefix);

// Removes every run whose owner is gone; returns the prefixes removed.
Result<std::vector<std::string>> reapStaleRuns(const SimPaths& paths);

// Kills every process in a cgroup subtree (cgroup.kill), waits until it is empty, removes the
// folders bottom-up. No-op when it does not exist.
Status removeCgroupTree(const std::string& root);

// Deletes a named network namespace as `ip netns del` does (unmount, unlink); the namespace is
// freed once no process is left in it. No-op when it does not exist.
Status removeNamedNetns(const std::string& path);

// Objects of `prefix` that exist right now, as human-readable descriptions; empty when clean.
std::vector<std::string> objectsOfRun(const SimPaths& paths, const std::string& prefix);

}  // namespace sluice::sim
