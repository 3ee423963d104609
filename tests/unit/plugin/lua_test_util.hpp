// Helpers for Lua host tests: plugin sources written to a temporary directory.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "fake_host.hpp"
#include "plugin/lua_host.hpp"

namespace stanzad::testing {

class LuaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    plugin::lua::set_runtime_path(std::string(STANZAD_SOURCE_DIR) + "/lua");
    static int n = 0;
    dir_ = std::filesystem::temp_directory_path() /
           ("stanzad-lua-" + std::to_string(::getpid()) + "-" + std::to_string(++n));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes mod_<name>.lua and returns its path.
  std::string write(const std::string& name, const std::string& source) {
    auto path = dir_ / ("mod_" + name + ".lua");
    std::ofstream(path) << source;
    return path.string();
  }
  // Writes and loads; fails the test if loading fails.
  void load(FakeHost& host, const std::string& name, const std::string& source) {
    std::string error;
    ASSERT_TRUE(host.load_lua(name, write(name, source), &error)) << error;
  }
  static std::string source_path(const std::string& rel) {
    return std::string(STANZAD_SOURCE_DIR) + "/" + rel;
  }

  std::filesystem::path dir_;
};

// The messages logged, in order, that start with `prefix`.
inline std::vector<std::string> logged_with(const FakeHost& host, const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& l : host.logs())
    if (l.message.rfind(prefix, 0) == 0) out.push_back(l.message);
  return out;
}

}  // namespace stanzad::testing
