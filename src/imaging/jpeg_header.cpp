#include "imaging/jpeg_header.hpp"

#include <algorithm>
#include <csetjmp>
#include <cstdio> // jpeglib.h needs FILE
#include <cstring>
#include <vector>

#include <jerror.h>
#include <jpeglib.h>
#include <libexif/exif-data.h>

namespace resized::imaging {

namespace {

// libjpeg reports fatal errors through error_exit, which must not return:
// it jumps back to read_jpeg_header's setjmp. Only trivially destructible
// objects live between the two.
struct error_manager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void on_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<error_manager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void on_message(j_common_ptr, int) {} // warnings: the thumbnail reports them

// Everything touched after setjmp is here, so nothing needs destroying when
// libjpeg jumps back.
struct header_reader {
  jpeg_decompress_struct cinfo;
  error_manager err;
  // The first APP1 segment that starts "Exif", as libvips 8.14 takes it
  // (its jpeg2vips.c attaches only the first): a view
  // into the caller's bytes (jpeg_mem_src reads them in place).
  const unsigned char* exif = nullptr;
  size_t exif_size = 0;
};

// APP1 segments: EXIF (kept as a view, not copied) or XMP and others
// (skipped without being read). Replaces libjpeg's save_marker, which
// copies a byte at a time.
boolean on_app1(j_decompress_ptr cinfo) {
  auto* r = static_cast<header_reader*>(cinfo->client_data);
  auto* src = cinfo->src;
  auto next_byte = [&]() -> unsigned {
    // jpeg_mem_src never suspends: at the end it supplies a fake EOI
    if (src->bytes_in_buffer == 0)
      (*src->fill_input_buffer)(cinfo);
    --src->bytes_in_buffer;
    return *src->next_input_byte++;
  };
  unsigned high = next_byte();
  long length = static_cast<long>((high << 8) | next_byte()) - 2;
  if (length < 0) {
    cinfo->err->msg_code = JERR_BAD_LENGTH;
    (*cinfo->err->error_exit)(reinterpret_cast<j_common_ptr>(cinfo));
  }
  auto available = std::min(static_cast<size_t>(length), src->bytes_in_buffer);
  if (r->exif == nullptr && available > 4 &&
      std::memcmp(src->next_input_byte, "Exif", 4) == 0) {
    r->exif = src->next_input_byte;
    r->exif_size = available;
  }
  if (length > 0)
    (*src->skip_input_data)(cinfo, length);
  return TRUE;
}

bool read_orientation(const unsigned char* app1, size_t size, int& value);

bool read(header_reader& r, const unsigned char* data, size_t size,
          probe_info& out) {
  r.cinfo.err = jpeg_std_error(&r.err.pub);
  r.err.pub.error_exit = on_error;
  r.err.pub.emit_message = on_message;
  r.err.message[0] = '\0';
  if (setjmp(r.err.jump) != 0) {
    jpeg_destroy_decompress(&r.cinfo);
    return false;
  }
  jpeg_create_decompress(&r.cinfo);
  r.cinfo.client_data = &r;
  jpeg_mem_src(&r.cinfo, data, static_cast<unsigned long>(size));
  jpeg_set_marker_processor(&r.cinfo, JPEG_APP0 + 1, on_app1);
  jpeg_read_header(&r.cinfo, TRUE);
  out.format = input_format::jpeg;
  out.width = static_cast<int>(r.cinfo.image_width);
  out.height = static_cast<int>(r.cinfo.image_height);
  out.bytes_per_pixel = r.cinfo.num_components; // 8-bit samples
  out.pages = 1;
  // Progressive, or sequential in several scans: either way libjpeg holds
  // every coefficient of the image (libvips' "interlaced" is the same test).
  out.progressive = jpeg_has_multiple_scans(&r.cinfo) != 0;
  int orientation = 0;
  out.orientation_certain = read_orientation(r.exif, r.exif_size, orientation);
  out.orientation_swap = orientation >= 5;
  jpeg_destroy_decompress(&r.cinfo);
  return true;
}

} // namespace

size_t jpeg_entropy_end(const void* data, size_t pos, size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  while (pos < size) {
    auto* ff = static_cast<const unsigned char*>(
        std::memchr(p + pos, 0xFF, size - pos));
    if (ff == nullptr)
      return jpeg_data_runs_on;
    size_t at = static_cast<size_t>(ff - p);
    if (at + 1 >= size)
      return jpeg_data_runs_on;
    unsigned next = p[at + 1];
    if (next == 0x00 || (next >= 0xD0 && next <= 0xD7))
      pos = at + 2;
    else if (next == 0xFF)
      pos = at + 1;
    else
      return at;
  }
  return jpeg_data_runs_on;
}

size_t count_jpeg_scans(const void* data, size_t size, size_t stop_after) {
  const auto* p = static_cast<const unsigned char*>(data);
  size_t scans = 0;
  size_t pos = 2; // after SOI
  while (pos + 1 < size && scans <= stop_after) {
    if (p[pos] != 0xFF) {
      ++pos; // not at a marker: libjpeg skips such bytes too
      continue;
    }
    unsigned marker = p[pos + 1];
    if (marker == 0xFF || marker == 0x00) { // fill byte, or stray stuffing
      ++pos;
      continue;
    }
    pos += 2;
    if (marker == 0xD9) // EOI
      break;
    if ((marker >= 0xD0 && marker <= 0xD7) || marker == 0x01)
      continue; // no length
    if (pos + 1 >= size)
      break;
    size_t length = (size_t{p[pos]} << 8) | p[pos + 1];
    if (length < 2)
      break;
    pos += length;
    if (marker != 0xDA)
      continue;
    ++scans;
    // the scan's data, up to the marker the outer loop reads next
    pos = jpeg_entropy_end(p, pos, size);
    if (pos == jpeg_data_runs_on)
      break;
  }
  return scans;
}

namespace {

// -- jpeg_data_ends_early
// --------------------------------------------------------

// Everything touched after setjmp, as in header_reader.
struct end_checker {
  jpeg_decompress_struct cinfo;
  error_manager err;
  bool ends_early = false;
};

// A warning that says the data ended early stops the decode: the answer is
// known, the rest would be made-up blocks.
void on_end_warning(j_common_ptr cinfo, int msg_level) {
  if (msg_level >= 0)
    return; // trace messages
  int code = cinfo->err->msg_code;
  if (code == JWRN_HIT_MARKER || code == JWRN_JPEG_EOF) {
    auto* checker = static_cast<end_checker*>(cinfo->client_data);
    checker->ends_early = true;
    on_error(cinfo);
  }
}

bool check_end(end_checker& c, const unsigned char* data, size_t size,
               std::vector<JSAMPLE>& row) {
  c.cinfo.err = jpeg_std_error(&c.err.pub);
  c.err.pub.error_exit = on_error;
  c.err.pub.emit_message = on_end_warning;
  c.err.message[0] = '\0';
  if (setjmp(c.err.jump) != 0) {
    jpeg_destroy_decompress(&c.cinfo);
    return c.ends_early;
  }
  jpeg_create_decompress(&c.cinfo);
  c.cinfo.client_data = &c;
  jpeg_mem_src(&c.cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&c.cinfo, TRUE);
  // the cheapest decode that still reads every scan: 1/8 scale (1x1 IDCT),
  // no fancy upsampling
  c.cinfo.scale_num = 1;
  c.cinfo.scale_denom = 8;
  c.cinfo.dct_method = JDCT_IFAST;
  c.cinfo.do_fancy_upsampling = FALSE;
  jpeg_start_decompress(&c.cinfo); // a progressive JPEG: every scan read here
  row.resize(size_t{c.cinfo.output_width} * c.cinfo.output_components);
  JSAMPROW rows[1] = {row.data()};
  while (c.cinfo.output_scanline < c.cinfo.output_height)
    jpeg_read_scanlines(&c.cinfo, rows, 1);
  jpeg_destroy_decompress(&c.cinfo);
  return false;
}

/// libvips 8.14's orientation of an APP1 segment's data, as `value` (0: none
/// or out of range) and whether it is certain: false when the last IFD0
/// Orientation entry is of a type we do not read (libvips reads it through
/// its text form: "6" or "6/1" would be 6 there).
bool read_orientation(const unsigned char* app1, size_t size, int& value) {
  // Read as libvips 8.14 reads it (foreign/exif.c), so that both agree: the
  // block loaded without libexif's defaults, then fixed; the last
  // Orientation entry of IFD0; its first value if it is an integer type.
  value = 0;
  if (app1 == nullptr || size <= 4 || size > (1u << 20) ||
      std::memcmp(app1, "Exif", 4) != 0)
    return true;
  ExifData* exif = exif_data_new();
  if (exif == nullptr)
    return false;
  exif_data_unset_option(exif, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
  exif_data_load_data(exif, app1, static_cast<unsigned>(size));
  exif_data_fix(exif);
  auto order = exif_data_get_byte_order(exif);
  bool certain = true;
  ExifContent* ifd0 = exif->ifd[EXIF_IFD_0];
  for (unsigned i = 0; ifd0 != nullptr && i < ifd0->count; ++i) {
    const ExifEntry* e = ifd0->entries[i];
    if (e == nullptr || e->tag != EXIF_TAG_ORIENTATION)
      continue;
    int v = 0;
    certain = false; // until read as an integer below
    if (e->components == 0 || e->components >= 10 || e->data == nullptr)
      continue;
    size_t width = e->size / e->components;
    if (e->format == EXIF_FORMAT_SHORT && width >= 2)
      v = exif_get_short(e->data, order);
    else if (e->format == EXIF_FORMAT_SSHORT && width >= 2)
      v = exif_get_sshort(e->data, order);
    else if (e->format == EXIF_FORMAT_LONG && width >= 4)
      v = static_cast<int>(exif_get_long(e->data, order));
    else if (e->format == EXIF_FORMAT_SLONG && width >= 4)
      v = exif_get_slong(e->data, order);
    else
      continue; // text or fractions: no orientation we rely on
    value = v >= 1 && v <= 8 ? v : 0;
    certain = true;
  }
  exif_data_unref(exif);
  return certain;
}

} // namespace

int exif_orientation(const unsigned char* app1, size_t size) {
  int value = 0;
  read_orientation(app1, size, value);
  return value;
}

std::optional<int> jpeg_exif_orientation(const void* data, size_t size) {
  // The segments before the first scan, as libjpeg reads them; the first
  // APP1 that starts "Exif" is the one libvips takes.
  const auto* p = static_cast<const unsigned char*>(data);
  if (p == nullptr || size < 4 || p[0] != 0xFF || p[1] != 0xD8)
    return std::nullopt;
  size_t pos = 2;
  while (pos + 4 <= size && p[pos] == 0xFF) {
    unsigned marker = p[pos + 1];
    if (marker == 0xFF) {
      ++pos; // fill byte
      continue;
    }
    if (marker == 0xDA || marker == 0xD9)
      return 0; // no EXIF before the image data
    // A stuffed zero (FF 00) libjpeg skips as garbage, looking for the next
    // marker; TEM, RSTn and SOI have no length. Where a segment starts
    // after them is libjpeg's to say (the fuzzer found FF 00 read here as a
    // segment whose length hid the EXIF libvips then read).
    if (marker == 0x00 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8))
      return std::nullopt;
    size_t length = (size_t{p[pos + 2]} << 8) | p[pos + 3];
    if (length < 2 || length > size - pos - 2)
      return std::nullopt;
    if (marker == 0xE1 && length - 2 > 4 &&
        std::memcmp(p + pos + 4, "Exif", 4) == 0) {
      int value = 0;
      if (!read_orientation(p + pos + 4, length - 2, value))
        return std::nullopt;
      return value;
    }
    pos += 2 + length;
  }
  return std::nullopt; // not laid out as libjpeg expects: not ours to say
}

bool jpeg_data_ends_early(const void* data, size_t size) {
  if (data == nullptr || size == 0)
    return false;
  end_checker checker{};
  std::vector<JSAMPLE> row; // outside the setjmp: freed however it ends
  return check_end(checker, static_cast<const unsigned char*>(data), size, row);
}

std::optional<probe_info> read_jpeg_header(const void* data, size_t size,
                                           std::string& error,
                                           bool* unsupported) {
  if (unsupported != nullptr)
    *unsupported = false;
  if (data == nullptr || size == 0) {
    error = "no data";
    return std::nullopt;
  }
  header_reader r{};
  probe_info out;
  if (!read(r, static_cast<const unsigned char*>(data), size, out)) {
    error = r.err.message[0] != '\0' ? r.err.message : "unreadable header";
    // A frame type or sample precision this libjpeg build has no decoder
    // for (libjpeg-turbo 2.1: 8-bit baseline, extended, progressive and
    // arithmetic only).
    if (unsupported != nullptr)
      *unsupported = r.err.pub.msg_code == JERR_SOF_UNSUPPORTED ||
                     r.err.pub.msg_code == JERR_BAD_PRECISION;
    return std::nullopt;
  }
  return out;
}

} // namespace resized::imaging
