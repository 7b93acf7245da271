#include "imaging/jpeg_dc_scans.hpp"

#include <algorithm>
#include <array>
#include <bitset>
#include <cstdint>
#include <cstring>

namespace resized::imaging {

namespace {

constexpr size_t npos = static_cast<size_t>(-1);

struct component {
  unsigned id = 0;
  unsigned h = 1; // sampling factors
  unsigned v = 1;
  /// AC coefficients are read at 1/8 scale: libjpeg decodes the component
  /// with an IDCT larger than 1x1 (it saves upsampling a subsampled one).
  bool keeps_ac = false;
  bool has_dc = false;     // a first DC scan (Ah = 0) was seen
  std::bitset<64> ac_sent; // coefficients 1..63 of first AC scans
};

/// libjpeg-turbo 2.1's choice of IDCT size for a component at scale 1/8
/// (jdmaster.c, jpeg_core_output_dimensions, with min_DCT_scaled_size 1):
/// doubled while the component's sampling divides the largest evenly.
bool idct_larger_than_1x1(const component& c, unsigned max_h, unsigned max_v) {
  return max_h % (c.h * 2) == 0 && max_v % (c.v * 2) == 0;
}

unsigned be16(const unsigned char* p) {
  return (unsigned{p[0]} << 8) | p[1];
}

/// Offset of the marker that ends the entropy-coded data starting at `pos`:
/// the first 0xFF not followed by a stuffed 0x00, a restart marker or
/// another 0xFF (fill). npos when the data runs to the end.
size_t entropy_end(const unsigned char* p, size_t pos, size_t size) {
  while (pos < size) {
    auto* ff = static_cast<const unsigned char*>(
        std::memchr(p + pos, 0xFF, size - pos));
    if (ff == nullptr)
      return npos;
    size_t at = static_cast<size_t>(ff - p);
    if (at + 1 >= size)
      return npos;
    unsigned next = p[at + 1];
    if (next == 0x00 || (next >= 0xD0 && next <= 0xD7))
      pos = at + 2;
    else if (next == 0xFF)
      pos = at + 1;
    else
      return at;
  }
  return npos;
}

/// Bits written most significant first, with a 0x00 stuffed after every
/// 0xFF byte, the last byte padded with 1 bits (T.81 F.1.2.3, B.1.1.5).
class bit_writer {
public:
  explicit bit_writer(std::string& out) : out_(out) {}
  void put(unsigned value, unsigned bits) {
    for (unsigned i = bits; i-- > 0;) {
      byte_ = static_cast<unsigned char>((byte_ << 1) | ((value >> i) & 1u));
      if (++filled_ == 8)
        flush();
    }
  }
  void finish() {
    while (filled_ != 0)
      put(1, 1);
  }

private:
  void flush() {
    out_.push_back(static_cast<char>(byte_));
    if (byte_ == 0xFF)
      out_.push_back('\0');
    byte_ = 0;
    filled_ = 0;
  }
  std::string& out_;
  unsigned char byte_ = 0;
  unsigned filled_ = 0;
};

/// One first-pass AC scan of a component (Ss 1, Se 63, Ah 0, Al 0) in
/// which every block is in an end-of-band run: all 63 AC coefficients
/// known, all zero. Huffman table AC 0 (defined before) codes EOBRUN
/// symbol r<<4 (r = 0..14) as r in 4 bits; each run is 2^r plus r more
/// bits, at most 32767 blocks (T.81 G.1.2.2).
void append_zero_ac_scan(std::string& out, const component& c,
                         unsigned long blocks) {
  const unsigned char sos[] = {
      0xFF, 0xDA, 0x00, 0x08, 0x01, static_cast<unsigned char>(c.id),
      0x00, 0x01, 0x3F, 0x00};
  out.append(reinterpret_cast<const char*>(sos), sizeof sos);
  bit_writer bits{out};
  while (blocks > 0) {
    unsigned long run = blocks < 32767 ? blocks : 32767;
    unsigned r = 0;
    while ((run >> (r + 1)) != 0)
      ++r;
    bits.put(r, 4);
    if (r > 0)
      bits.put(static_cast<unsigned>(run - (1ul << r)), r);
    blocks -= run;
  }
  bits.finish();
}

} // namespace

std::optional<std::string> jpeg_dc_scans(const void* data, size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  if (p == nullptr || size < 4 || p[0] != 0xFF || p[1] != 0xD8)
    return std::nullopt;
  std::string out;
  out.reserve(size / 8 + 1024);
  out.append(reinterpret_cast<const char*>(p), 2);

  std::array<component, 4> comps{};
  unsigned ncomps = 0, width = 0, height = 0, max_h = 1, max_v = 1;
  bool frame = false, dropped = false;
  auto find = [&](unsigned id) -> component* {
    for (unsigned i = 0; i < ncomps; ++i)
      if (comps[i].id == id)
        return &comps[i];
    return nullptr;
  };

  size_t pos = 2;
  for (;;) {
    if (pos >= size || p[pos] != 0xFF)
      return std::nullopt; // garbage between segments, or no EOI
    size_t start = pos;
    while (pos < size && p[pos] == 0xFF)
      ++pos;
    if (pos >= size)
      return std::nullopt;
    unsigned marker = p[pos++];
    if (marker == 0xD9)
      break; // EOI
    if (pos + 2 > size)
      return std::nullopt;
    unsigned length = be16(p + pos);
    if (length < 2 || length > size - pos)
      return std::nullopt;
    const unsigned char* body = p + pos + 2;
    size_t body_size = length - 2;
    pos += length;
    auto keep = [&](size_t end) {
      out.append(reinterpret_cast<const char*>(p + start), end - start);
    };

    if (marker == 0xC2) { // SOF2: progressive, Huffman
      if (frame || body_size < 6)
        return std::nullopt;
      height = be16(body + 1);
      width = be16(body + 3);
      ncomps = body[5];
      if (body[0] != 8 || width == 0 || height == 0 || ncomps == 0 ||
          ncomps > 4 || body_size != 6 + 3 * size_t{ncomps})
        return std::nullopt;
      for (unsigned i = 0; i < ncomps; ++i) {
        auto& c = comps[i];
        c.id = body[6 + 3 * i];
        c.h = body[7 + 3 * i] >> 4;
        c.v = body[7 + 3 * i] & 15u;
        if (c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4)
          return std::nullopt;
        for (unsigned j = 0; j < i; ++j)
          if (comps[j].id == c.id)
            return std::nullopt;
        max_h = std::max(max_h, c.h);
        max_v = std::max(max_v, c.v);
      }
      for (unsigned i = 0; i < ncomps; ++i)
        comps[i].keeps_ac = idct_larger_than_1x1(comps[i], max_h, max_v);
      frame = true;
      keep(pos);
    } else if (marker == 0xDA) { // SOS
      if (!frame || body_size < 1)
        return std::nullopt;
      unsigned count = body[0];
      if (count < 1 || count > 4 || body_size != 4 + 2 * size_t{count})
        return std::nullopt;
      unsigned ss = body[1 + 2 * count], se = body[2 + 2 * count];
      unsigned ah = body[3 + 2 * count] >> 4;
      size_t end = entropy_end(p, pos, size);
      if (end == npos)
        return std::nullopt;
      if (ss == 0) { // DC scan, possibly interleaved
        if (se != 0)
          return std::nullopt;
        for (unsigned i = 0; i < count; ++i) {
          component* c = find(body[1 + 2 * i]);
          if (c == nullptr)
            return std::nullopt;
          c->has_dc = c->has_dc || ah == 0;
        }
        keep(end);
      } else { // AC scan: one component (T.81 G.1.1.1.1)
        component* c = count == 1 ? find(body[1]) : nullptr;
        if (c == nullptr || se < ss || se > 63)
          return std::nullopt;
        if (ah == 0)
          for (unsigned k = ss; k <= se; ++k)
            c->ac_sent.set(k);
        if (c->keeps_ac)
          keep(end);
        else
          dropped = true;
      }
      pos = end;
    } else if (marker == 0xC4 || marker == 0xDB || marker == 0xDD ||
               marker == 0xFE || (marker >= 0xE0 && marker <= 0xEF)) {
      // tables, restart interval, comments, APPn: kept, except XMP
      // (APP1 "http://ns.adobe.com/xap/1.0/", and its extension segments)
      constexpr char xmp[] = "http://ns.adobe.com/";
      bool is_xmp = marker == 0xE1 && body_size >= sizeof xmp - 1 &&
                    std::memcmp(body, xmp, sizeof xmp - 1) == 0;
      if (!is_xmp)
        keep(pos);
    } else {
      // another frame type (baseline, arithmetic, lossless, hierarchical),
      // DNL, a second SOI, a stray restart marker: not for this rewrite
      return std::nullopt;
    }
  }

  if (!frame || !dropped)
    return std::nullopt;
  for (unsigned i = 0; i < ncomps; ++i) {
    const auto& c = comps[i];
    if (!c.has_dc)
      return std::nullopt;
    if (!c.keeps_ac && c.ac_sent.count() != 63) // every one of 1..63
      return std::nullopt;
  }

  // No restart markers in what follows; AC Huffman table 0 = EOBRUN codes.
  static const unsigned char tables[] = {
      0xFF, 0xDD, 0x00, 0x04, 0x00, 0x00,             // DRI 0
      0xFF, 0xC4, 0x00, 0x22, 0x10,                   // DHT, AC table 0
      0,    0,    0,    15,   0,    0,    0,    0,    // 15 codes of 4 bits
      0,    0,    0,    0,    0,    0,    0,    0,    //
      0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, // EOBRUN r = 0..14
      0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0, 0xE0};
  out.append(reinterpret_cast<const char*>(tables), sizeof tables);
  for (unsigned i = 0; i < ncomps; ++i) {
    const auto& c = comps[i];
    if (c.keeps_ac)
      continue;
    // blocks of the component (libjpeg's width_in_blocks, height_in_blocks)
    unsigned long across = (width * c.h + max_h * 8 - 1) / (max_h * 8);
    unsigned long down = (height * c.v + max_v * 8 - 1) / (max_v * 8);
    append_zero_ac_scan(out, c, across * down);
  }
  out.append("\xFF\xD9", 2);
  return out;
}

} // namespace resized::imaging
