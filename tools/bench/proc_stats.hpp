// What the generator measures about processes: CPU time and resident memory from /proc.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

namespace stanzad::bench {

// utime + stime of a process (pid 0 = the generator itself), in seconds; nullopt if gone.
std::optional<double> process_cpu_seconds(pid_t pid);
// VmRSS in KiB; nullopt if unknown.
std::optional<std::int64_t> process_rss_kib(pid_t pid);

// CPU used by the server (if a pid was given) and the generator over an interval.
class CpuMeter {
 public:
  explicit CpuMeter(pid_t server_pid) : server_pid_(server_pid) { restart(); }
  void restart();
  void stop();
  double wall_seconds() const { return wall_; }
  double server_seconds() const { return server_; }  // negative if unknown
  double generator_seconds() const { return generator_; }

 private:
  pid_t server_pid_;
  std::chrono::steady_clock::time_point start_;
  std::optional<double> server_start_;
  double generator_start_ = 0, wall_ = 0, server_ = -1, generator_ = 0;
};

// Percentile (0..100) of a sample set, sorting it in place; 0 if empty.
double percentile(std::vector<double>& samples, double p, bool sorted = false);

}  // namespace stanzad::bench
