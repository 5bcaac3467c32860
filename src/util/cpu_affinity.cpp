#include "recvae/util/cpu_affinity.h"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>

namespace recvae {

int usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

namespace {

struct CpuTimes {
  unsigned long long busy = 0, total = 0;
};

// Per CPU: jiffies spent busy and in all, from the "cpuN ..." lines of /proc/stat.
std::map<int, CpuTimes> read_cpu_times() {
  std::map<int, CpuTimes> out;
  std::ifstream in("/proc/stat");
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() < 4 || line.compare(0, 3, "cpu") != 0 || line[3] < '0' || line[3] > '9') continue;
    std::istringstream fields(line.substr(3));
    int cpu = 0;
    fields >> cpu;
    unsigned long long v = 0, idle = 0, total = 0;
    for (int k = 0; fields >> v; ++k) {
      if (k == 3 || k == 4) idle += v;  // idle, iowait
      if (k < 8) total += v;            // user nice system idle iowait irq softirq steal (guest is in user)
    }
    out[cpu] = CpuTimes{total - idle, total};
  }
  return out;
}

}  // namespace

int busy_cpus(double seconds) {
  cpu_set_t set;
  CPU_ZERO(&set);
  const bool masked = sched_getaffinity(0, sizeof(set), &set) == 0;
  const auto before = read_cpu_times();
  if (before.empty()) return 0;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const auto after = read_cpu_times();
  int busy = 0;
  for (const auto& [cpu, t1] : after) {
    if (masked && !CPU_ISSET(cpu, &set)) continue;
    const auto it = before.find(cpu);
    if (it == before.end() || t1.total <= it->second.total) continue;
    const double fraction =
        static_cast<double>(t1.busy - it->second.busy) / static_cast<double>(t1.total - it->second.total);
    if (fraction > 0.5) ++busy;
  }
  return busy;
}

}  // namespace recvae
