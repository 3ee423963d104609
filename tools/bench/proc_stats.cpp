// /proc readers for the generator; see proc_stats.hpp.
#include "proc_stats.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

namespace stanzad::bench {

std::optional<double> process_cpu_seconds(pid_t pid) {
  std::ifstream in(pid == 0 ? std::string("/proc/self/stat")
                            : "/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // The command name (field 2) may hold spaces; fields after its closing ')' are fixed.
  auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  static const long ticks = sysconf(_SC_CLK_TCK);
  return static_cast<double>(utime + stime) / static_cast<double>(ticks);
}

std::optional<std::int64_t> process_rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return std::nullopt;
}

void CpuMeter::restart() {
  start_ = std::chrono::steady_clock::now();
  server_start_ = server_pid_ > 0 ? process_cpu_seconds(server_pid_) : std::nullopt;
  generator_start_ = process_cpu_seconds(0).value_or(0);
}

void CpuMeter::stop() {
  wall_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  generator_ = process_cpu_seconds(0).value_or(0) - generator_start_;
  if (server_start_) {
    if (auto now = process_cpu_seconds(server_pid_)) server_ = *now - *server_start_;
  }
}

double percentile(std::vector<double>& samples, double p, bool sorted) {
  if (samples.empty()) return 0;
  if (!sorted) std::sort(samples.begin(), samples.end());
  double rank = std::ceil(p / 100.0 * static_cast<double>(samples.size()));
  std::size_t index = rank < 1 ? 0 : static_cast<std::size_t>(rank) - 1;
  return samples[std::min(index, samples.size() - 1)];
}

}  // namespace stanzad::bench
