// decode_fault_shim — LD_PRELOAD'ed into resized by end-to-end tests
// (e2e.lifecycle): faults in libwebp's WebPDecode, which libvips' webpload
// calls once a resize decodes an input (not when the HTTP layer reads its
// header), with the input after its 12-byte RIFF header. Chosen by the
// input file's size, from the environment:
//   RESIZED_TEST_WEBP_CRASH_SIZE=<n>  an input of n bytes aborts the process
//                                     (SIGABRT), as a decoder bug would
//   RESIZED_TEST_WEBP_HOLD=<n>:<ms>   an input of n bytes first waits ms,
//                                     holding its resize worker that long
// Any other input goes to the real WebPDecode.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <sys/resource.h>
#include <thread>

namespace {

size_t env_size(const char* name, const char** rest = nullptr) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0')
    return 0;
  char* end = nullptr;
  auto n = std::strtoull(v, &end, 10);
  if (rest != nullptr)
    *rest = end;
  return static_cast<size_t>(n);
}

// Whether WebPDecode's `size` bytes are the input of `file_size` bytes
// (0: none given).
bool is_input(size_t size, size_t file_size) {
  return file_size != 0 && (size == file_size || size + 12 == file_size);
}

} // namespace

struct WebPDecoderConfig; // opaque here

extern "C" int WebPDecode(const uint8_t* data, size_t size,
                          WebPDecoderConfig* config) {
  if (is_input(size, env_size("RESIZED_TEST_WEBP_CRASH_SIZE"))) {
    rlimit none{0, 0}; // a crash on purpose: no core file
    ::setrlimit(RLIMIT_CORE, &none);
    std::abort();
  }
  const char* rest = nullptr;
  if (is_input(size, env_size("RESIZED_TEST_WEBP_HOLD", &rest)) &&
      rest != nullptr && *rest == ':')
    std::this_thread::sleep_for(
        std::chrono::milliseconds{std::strtoull(rest + 1, nullptr, 10)});
  using real_fn = int (*)(const uint8_t*, size_t, WebPDecoderConfig*);
  static auto real =
      reinterpret_cast<real_fn>(::dlsym(RTLD_NEXT, "WebPDecode"));
  if (real == nullptr)
    std::abort(); // libwebp not loaded: nothing to stand in for
  return real(data, size, config);
}
