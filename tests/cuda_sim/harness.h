// Minimal test harness for the emulator's C++ tests: CHECK records failures instead of aborting so
// one run reports everything; each TEST prints "ok NAME" or "FAIL NAME" for pytest to assert on.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace harness {
inline int failures = 0;
inline int current_failures = 0;
inline std::vector<std::pair<const char*, void (*)()>>& tests() {
  static std::vector<std::pair<const char*, void (*)()>> t;
  return t;
}
struct Reg {
  Reg(const char* n, void (*f)()) { tests().push_back({n, f}); }
};
inline int run_all(int argc, char** argv) {
  for (auto& [name, fn] : tests()) {
    if (argc > 1 && std::string(argv[1]) != name) continue;
    current_failures = 0;
    fn();
    std::printf("%s %s\n", current_failures ? "FAIL" : "ok", name);
    failures += current_failures;
  }
  std::printf("%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
}  // namespace harness

#define TEST(name)                              \
  static void name();                           \
  static harness::Reg reg_##name(#name, &name); \
  static void name()

#define CHECK(cond, ...)                                                     \
  do {                                                                       \
    if (!(cond)) {                                                           \
      ++harness::current_failures;                                           \
      std::printf("  %s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
      std::printf(" " __VA_ARGS__);                                          \
      std::printf("\n");                                                     \
    }                                                                        \
  } while (0)

#define TEST_MAIN \
  int main(int argc, char** argv) { return harness::run_all(argc, argv); }
