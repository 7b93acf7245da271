// Fuzzes imaging::jpeg_dc_scans, which rewrites client bytes. Besides "no
// crash": what it returns starts with SOI and ends with EOI, is never more
// than its zero AC scans larger than the input, has the input's image size
// as libjpeg reads it (the pixel limit rests on it), and — the point of it —
// decodes at 1/8 scale to the same pixels as the input, whenever the input
// decodes there without a warning (a corrupt AC scan the rewrite drops may
// make the two differ, and then the input was broken anyway).
#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <cstdio> // jpeglib.h needs FILE
#include <optional>
#include <string>
#include <vector>

#include <jpeglib.h>

#include "fuzz_support.hpp"
#include "imaging/jpeg_dc_scans.hpp"
#include "imaging/jpeg_header.hpp"

using namespace resized;

namespace {

struct error_manager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
};

void on_error(j_common_ptr cinfo) {
  std::longjmp(reinterpret_cast<error_manager*>(cinfo->err)->jump, 1);
}

// Counts warnings (what libjpeg's own emit_message does besides printing).
void on_message(j_common_ptr cinfo, int level) {
  if (level < 0)
    ++cinfo->err->num_warnings;
}

/// libjpeg's 1/8-scale decode with its defaults (as libvips' loader runs
/// it), or nullopt on an error or a warning.
std::optional<std::vector<unsigned char>> decode_eighth(const void* data,
                                                        size_t size) {
  // Everything libjpeg's longjmp may cross lives here, on the heap.
  struct state {
    jpeg_decompress_struct cinfo;
    error_manager err;
    std::vector<unsigned char> pixels;
    std::optional<std::vector<unsigned char>> out;
  };
  auto* s = new state{};
  s->cinfo.err = jpeg_std_error(&s->err.pub);
  s->err.pub.error_exit = on_error;
  s->err.pub.emit_message = on_message;
  if (setjmp(s->err.jump) == 0) {
    jpeg_create_decompress(&s->cinfo);
    jpeg_mem_src(&s->cinfo, static_cast<const unsigned char*>(data),
                 static_cast<unsigned long>(size));
    jpeg_read_header(&s->cinfo, TRUE);
    s->cinfo.scale_num = 1;
    s->cinfo.scale_denom = 8;
    // bounded work per input: at most 4 M pixels before the 1/8 scale
    if (uint64_t{s->cinfo.image_width} * s->cinfo.image_height <= (4u << 20)) {
      jpeg_start_decompress(&s->cinfo);
      size_t row = size_t{s->cinfo.output_width} * s->cinfo.output_components;
      s->pixels.resize(row * s->cinfo.output_height);
      while (s->cinfo.output_scanline < s->cinfo.output_height) {
        JSAMPROW line = s->pixels.data() + row * s->cinfo.output_scanline;
        jpeg_read_scanlines(&s->cinfo, &line, 1);
      }
      jpeg_finish_decompress(&s->cinfo);
      if (s->err.pub.num_warnings == 0)
        s->out = std::move(s->pixels);
    }
  }
  jpeg_destroy_decompress(&s->cinfo);
  auto out = std::move(s->out);
  delete s;
  return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto dc = imaging::jpeg_dc_scans(data, size);
  if (!dc)
    return 0;
  fuzz::check(dc->size() >= 4 && dc->compare(0, 2, "\xFF\xD8") == 0 &&
                  dc->compare(dc->size() - 2, 2, "\xFF\xD9") == 0,
              "the DC-scans stream is not SOI ... EOI");
  // zero AC scans: at most 4 x (10 + 2,048 runs of 18 bits) bytes
  fuzz::check(dc->size() <= size + 24 * 1024,
              "the DC-scans stream grew past its zero AC scans");
  std::string in_error, out_error;
  auto in = imaging::read_jpeg_header(data, size, in_error);
  auto out = imaging::read_jpeg_header(dc->data(), dc->size(), out_error);
  // libjpeg reads a header up to the first scan: once AC scans are gone,
  // tables that followed them come first, so a bad one can fail the
  // rewrite's header and not the input's; the input fails later then.
  fuzz::check(in.has_value() || !out.has_value(),
              "the rewrite's header reads, the input's does not");
  if (in && !out)
    fuzz::check(!decode_eighth(data, size).has_value(),
                "the rewrite's header does not read, the input decodes");
  if (in && out) {
    fuzz::check(in->width == out->width && in->height == out->height,
                "the DC-scans stream changed the image size");
    auto whole = decode_eighth(data, size);
    if (whole) {
      auto cut = decode_eighth(dc->data(), dc->size());
      fuzz::check(cut.has_value(), "the DC-scans stream does not decode");
      fuzz::check(*cut == *whole, "the DC-scans stream decodes to other "
                                  "pixels at 1/8 scale");
    }
  }
  return 0;
}
