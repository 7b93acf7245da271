#include "imaging/jpeg_dc_scans.hpp"
#include "imaging/jpeg_header.hpp"

#include <algorithm>
#include <array>
#include <bitset>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace resized::imaging {

namespace {

struct component {
  unsigned id = 0;
  unsigned h = 1; // sampling factors
  unsigned v = 1;
  /// AC coefficients are read at 1/8 scale: libjpeg decodes the component
  /// with an IDCT larger than 1x1 (it saves upsampling a subsampled one).
  bool keeps_ac = false;
  bool has_dc = false;     // a first DC scan (Ah = 0) was seen
  std::bitset<64> ac_sent; // coefficients 1..63 of first AC scans
  /// The point transform each coefficient is known to so far (-1: not yet
  /// sent; 0: every bit).
  std::array<int, 64> known{};
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

/// Bits needed to write `magnitude` (0 for 0): a coded value's size
/// (T.81 F.1.2.1).
unsigned bit_length(unsigned long magnitude) {
  return magnitude == 0 ? 0 : 64 - __builtin_clzl(magnitude);
}

/// A coded value from its `size` extra bits (T.81 F.2.2.1, EXTEND).
int32_t extend(uint32_t bits, unsigned size) {
  auto v = static_cast<int32_t>(bits);
  return size != 0 && v < (1 << (size - 1)) ? v - ((1 << size) - 1) : v;
}

/// The `size` extra bits that code `v` (T.81 F.1.2.1): the inverse of
/// `extend`.
uint32_t extra_bits(int32_t v, unsigned size) {
  return static_cast<uint32_t>(v < 0 ? v - 1 : v) & ((1u << size) - 1);
}

/// Bits written most significant first, with a 0x00 stuffed after every
/// 0xFF byte, the last byte padded with 1 bits (T.81 F.1.2.3, B.1.1.5).
class bit_writer {
public:
  explicit bit_writer(std::string& out) : out_(out) {}
  /// Appends the low `bits` (at most 32) of `value`.
  void put(uint32_t value, unsigned bits) {
    acc_ = (acc_ << bits) | (value & ((uint64_t{1} << bits) - 1));
    filled_ += bits;
    if (filled_ >= 32) {
      filled_ -= 32;
      write(static_cast<uint32_t>(acc_ >> filled_), 4);
    }
  }
  void finish() {
    if (filled_ % 8 != 0)
      put((1u << (8 - filled_ % 8)) - 1, 8 - filled_ % 8);
    write(static_cast<uint32_t>(acc_ << (32 - filled_)), filled_ / 8);
    filled_ = 0;
  }

private:
  /// The top `count` bytes of `word`, a 0x00 after each 0xFF.
  void write(uint32_t word, unsigned count) {
    uint32_t inverted = ~word; // a 0xFF byte is a zero byte here
    bool has_ff = ((inverted - 0x01010101u) & ~inverted & 0x80808080u) != 0;
    if (count == 4 && !has_ff) {
      const char bytes[4] = {
          static_cast<char>(word >> 24), static_cast<char>(word >> 16),
          static_cast<char>(word >> 8), static_cast<char>(word)};
      out_.append(bytes, 4);
      return;
    }
    for (unsigned i = 0; i < count; ++i) {
      auto byte = static_cast<unsigned char>(word >> (24 - 8 * i));
      out_.push_back(static_cast<char>(byte));
      if (byte == 0xFF)
        out_.push_back('\0');
    }
  }
  std::string& out_;
  uint64_t acc_ = 0;
  unsigned filled_ = 0; // bits in acc_ not yet written (under 32)
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
    unsigned r = bit_length(run) - 1;
    bits.put(r, 4);
    if (r > 0)
      bits.put(static_cast<unsigned>(run - (1ul << r)), r);
    blocks -= run;
  }
  bits.finish();
}

// -- the baseline form
// ---------------------------------------------------------
//
// What the 1/8 decode reads can travel in a baseline (sequential) JPEG:
// each block its DC value, then an end-of-block, or for a component decoded
// with a larger IDCT (4:2:0 chroma) its AC coefficients. libjpeg decodes a
// baseline JPEG a row of blocks at a time, where a progressive one needs
// every coefficient of the whole image in memory first (6 bytes a pixel: 88
// MB for a 14.7 MP photo, allocated and zeroed even when only DC scans
// follow). So those scans are decoded here (Huffman, restart intervals,
// successive approximation, end-of-band runs: T.81 G.1.2, G.2) and written
// again.

/// A Huffman table as DHT defines it: codes per length, symbols in order.
struct huffman_spec {
  std::array<uint8_t, 17> bits{}; // bits[l]: codes of length l (1..16)
  std::array<uint8_t, 256> values{};
  bool defined = false;
};

/// Canonical decoding (T.81 F.2.2.3): the codes of each length are
/// consecutive, from mincode to maxcode; codes of up to `lookahead` bits
/// are found with one table read (as libjpeg does).
class huffman_decoder {
public:
  static constexpr unsigned lookahead = 9;

  /// False when the table is undefined or its code lengths overflow.
  bool build(const huffman_spec& spec) {
    if (!spec.defined)
      return false;
    values_ = spec.values;
    fast_.fill(0);
    int32_t code = 0, k = 0;
    for (unsigned l = 1; l <= 16; ++l) {
      offset_[l] = k - code;
      for (unsigned n = 0; n < spec.bits[l]; ++n, ++code, ++k)
        if (l <= lookahead && code < (int32_t{1} << l)) {
          // every `lookahead`-bit string that starts with this code
          uint32_t first = static_cast<uint32_t>(code) << (lookahead - l);
          for (uint32_t x = 0; x < (1u << (lookahead - l)); ++x)
            fast_[first + x] = static_cast<uint16_t>((l << 8) | values_[k]);
        }
      if (code > (int32_t{1} << l))
        return false;
      maxcode_[l] = spec.bits[l] != 0 ? code - 1 : -1;
      code <<= 1;
    }
    count_ = k;
    return true;
  }
  /// The next symbol, or -1 for a code no table holds.
  template <class Bits>
  int decode(Bits& bits) const {
    uint16_t hit = fast_[bits.peek(lookahead)];
    if (hit != 0) {
      bits.skip(hit >> 8);
      return hit & 0xFF;
    }
    for (unsigned l = lookahead + 1; l <= 16; ++l) {
      auto code = static_cast<int32_t>(bits.peek(l));
      if (code <= maxcode_[l]) {
        bits.skip(l);
        int32_t index = code + offset_[l];
        return index >= 0 && index < count_ ? values_[index] : -1;
      }
    }
    return -1;
  }

private:
  std::array<uint8_t, 256> values_{};
  std::array<uint16_t, 1u << lookahead> fast_{}; // length << 8 | symbol
  std::array<int32_t, 17> maxcode_{};
  std::array<int32_t, 17> offset_{};
  int32_t count_ = 0;
};

/// Entropy-coded bytes read through a 64-bit buffer: stuffed zeros
/// removed; at a marker it stops and supplies zero bits, which `ok` then
/// reports if they were used (libjpeg would warn and make up zeros: the
/// caller falls back to the progressive form instead). Restart markers are
/// consumed only where `restart` expects them.
class bit_reader {
public:
  bit_reader(const unsigned char* p, size_t begin, size_t end)
      : p_(p), pos_(begin), end_(end) {}
  /// The next `n` (1..25) bits, not consumed.
  uint32_t peek(unsigned n) {
    if (bits_ < n)
      fill();
    return static_cast<uint32_t>(acc_ >> (bits_ - n)) & ((1u << n) - 1);
  }
  void skip(unsigned n) { bits_ -= n; }
  uint32_t get(unsigned n) {
    uint32_t v = peek(n);
    skip(n);
    return v;
  }
  /// No bit used past the data so far.
  bool ok() const { return bits_ >= padding_; }
  /// Drops the rest of the byte and reads the restart marker that must
  /// follow, the next in RST0-RST7's cycle; false if the interval's data did
  /// not end exactly there or the marker is another (libjpeg would warn,
  /// resynchronise and make up blocks: the whole stream then decides).
  bool restart() {
    bits_ -= bits_ % 8;
    if (bits_ != padding_)
      return false; // data left over
    while (pos_ + 1 < end_ && p_[pos_] == 0xFF && p_[pos_ + 1] == 0xFF)
      ++pos_; // fill bytes
    if (pos_ + 1 >= end_ || p_[pos_] != 0xFF ||
        p_[pos_ + 1] != 0xD0 + next_rst_)
      return false;
    next_rst_ = (next_rst_ + 1) % 8;
    pos_ += 2;
    acc_ = 0;
    bits_ = padding_ = 0;
    at_marker_ = false;
    return true;
  }

private:
  void fill() {
    // Fast path: the bytes that fit, read at once when none is 0xFF (a
    // stuffed byte or a marker).
    unsigned room = (64 - bits_) / 8;
    if (!at_marker_ && end_ - pos_ >= 8) {
      uint64_t word;
      std::memcpy(&word, p_ + pos_, 8);
      word = __builtin_bswap64(word); // the first byte on top
      uint64_t inverted = ~word;      // a 0xFF byte is a zero byte here
      uint64_t zero = (inverted - 0x0101010101010101ull) & ~inverted &
                      0x8080808080808080ull;
      uint64_t taken = ~uint64_t{0} << (64 - 8 * room);
      if ((zero & taken) == 0) {
        acc_ =
            room == 8 ? word : (acc_ << (8 * room)) | (word >> (64 - 8 * room));
        bits_ += 8 * room;
        pos_ += room;
        return;
      }
    }
    while (bits_ <= 56) {
      unsigned byte = 0;
      if (!at_marker_ && pos_ < end_ &&
          (p_[pos_] != 0xFF || (pos_ + 1 < end_ && p_[pos_ + 1] == 0x00))) {
        byte = p_[pos_];
        pos_ += byte == 0xFF ? 2 : 1;
      } else {
        at_marker_ = true; // pos_ stays on the marker
        padding_ += 8;
      }
      acc_ = (acc_ << 8) | byte;
      bits_ += 8;
    }
  }
  const unsigned char* p_;
  size_t pos_, end_;
  uint64_t acc_ = 0;
  unsigned bits_ = 0;    // unread bits at the bottom of acc_
  unsigned padding_ = 0; // how many of them are made-up zeros
  bool at_marker_ = false;
  unsigned next_rst_ = 0; // the restart marker due next, 0-7
};

/// One scan of the input the 1/8 decode reads (every DC scan, the AC scans
/// of the components that keep theirs), as needed to decode it again.
struct kept_scan {
  size_t begin = 0, end = 0;           // its entropy-coded bytes
  unsigned count = 0;                  // components in it
  std::array<unsigned, 4> component{}; // indexes into the frame's
  std::array<unsigned, 4> table{};     // DC table per component
  unsigned ss = 0, se = 0;             // spectral band: 0, 0 for DC
  unsigned ah = 0, al = 0;
  unsigned restart_interval = 0;
  huffman_spec ac_table;                 // an AC scan's, first or refining
  std::array<huffman_spec, 4> dc_tables; // as defined when the scan starts
};

/// Whether the n-th MCU of `scan` starts a new restart interval.
bool restart_due(const kept_scan& scan, unsigned long n) {
  return scan.restart_interval != 0 && n != 0 && n % scan.restart_interval == 0;
}

/// The coefficients the 1/8 decode reads: the DC values of every block of
/// every component, MCU-padded (an interleaved scan codes the padding blocks
/// too), and the AC coefficients of the components that keep them.
struct coefficients {
  std::array<std::vector<int16_t>, 4> dc;
  std::array<unsigned long, 4> stride{};
  /// Components that keep their AC coefficients: 64 a block, in zigzag
  /// order (index 0 unused: the DC value is in `dc`).
  std::array<std::vector<int16_t>, 4> ac;
};

/// The frame's geometry (T.81 A.2).
struct frame_geometry {
  unsigned width = 0, height = 0, ncomps = 0, max_h = 1, max_v = 1;
  std::array<component, 4>* comps = nullptr;
  unsigned long mcus_across() const {
    return (width + 8 * max_h - 1) / (8 * max_h);
  }
  unsigned long mcus_down() const {
    return (height + 8 * max_v - 1) / (8 * max_v);
  }
  unsigned long blocks_across(const component& c) const {
    return (width * c.h + max_h * 8 - 1) / (max_h * 8);
  }
  unsigned long blocks_down(const component& c) const {
    return (height * c.v + max_v * 8 - 1) / (max_v * 8);
  }
};

/// Visits the blocks of a scan of `comps` (indexes, in scan order) in the
/// order they are coded: MCU by MCU, `on_block(index in the scan,
/// component, row, column)`;
/// `on_mcu(n)` before the n-th MCU (restart intervals count MCUs). A scan
/// of one component codes its blocks row by row, without MCU padding.
template <class McuFn, class BlockFn>
bool for_each_block(const frame_geometry& f, const unsigned* comps,
                    unsigned count, McuFn on_mcu, BlockFn on_block) {
  unsigned long n = 0;
  if (count == 1) {
    const auto& c = (*f.comps)[comps[0]];
    const unsigned long rows = f.blocks_down(c), cols = f.blocks_across(c);
    for (unsigned long row = 0; row < rows; ++row)
      for (unsigned long col = 0; col < cols; ++col) {
        if (!on_mcu(n++) || !on_block(0u, comps[0], row, col))
          return false;
      }
    return true;
  }
  const unsigned long mcu_rows = f.mcus_down(), mcu_cols = f.mcus_across();
  if (f.max_h == 1 && f.max_v == 1) { // 4:4:4: one block of each an MCU
    for (unsigned long row = 0; row < mcu_rows; ++row)
      for (unsigned long col = 0; col < mcu_cols; ++col) {
        if (!on_mcu(n++))
          return false;
        for (unsigned i = 0; i < count; ++i)
          if (!on_block(i, comps[i], row, col))
            return false;
      }
    return true;
  }
  for (unsigned long mrow = 0; mrow < mcu_rows; ++mrow)
    for (unsigned long mcol = 0; mcol < mcu_cols; ++mcol) {
      if (!on_mcu(n++))
        return false;
      for (unsigned i = 0; i < count; ++i) {
        const auto& c = (*f.comps)[comps[i]];
        for (unsigned y = 0; y < c.v; ++y)
          for (unsigned x = 0; x < c.h; ++x)
            if (!on_block(i, comps[i], mrow * c.v + y, mcol * c.h + x))
              return false;
      }
    }
  return true;
}

/// Decodes one AC scan of a component that keeps its AC coefficients into
/// `img.ac` (T.81 G.1.2.2 first scans with end-of-band runs, G.1.2.3
/// refinement; the same steps as libjpeg's jdphuff.c). False on anything
/// libjpeg would only warn about.
bool decode_ac_scan(const unsigned char* p, const kept_scan& scan,
                    const frame_geometry& f, coefficients& img) {
  huffman_decoder table; // refinement scans code their runs with it too
  if (!table.build(scan.ac_table))
    return false;
  const unsigned ci = scan.component[0];
  bit_reader bits{p, scan.begin, scan.end};
  uint32_t eobrun = 0;
  const int p1 = 1 << scan.al;    // 1 in the bit position being coded
  const int m1 = -(1 << scan.al); // -1 in the bit position being coded
  auto on_mcu = [&](unsigned long n) {
    if (restart_due(scan, n)) {
      if (!bits.restart())
        return false;
      eobrun = 0;
    }
    return true;
  };
  // a nonzero coefficient's correction bit (refinement)
  auto correct = [&](int16_t& coef) {
    if (bits.get(1) != 0 && (coef & p1) == 0)
      coef = static_cast<int16_t>(coef + (coef >= 0 ? p1 : m1));
  };
  auto on_block = [&](unsigned, unsigned, unsigned long row,
                      unsigned long col) {
    int16_t* coef = &img.ac[ci][(row * img.stride[ci] + col) * 64];
    unsigned k = scan.ss;
    if (scan.ah == 0) { // first scan
      if (eobrun > 0) {
        --eobrun;
        return true;
      }
      for (; k <= scan.se; ++k) {
        int rs = table.decode(bits);
        if (rs < 0)
          return false;
        unsigned r = static_cast<unsigned>(rs) >> 4, size = rs & 15u;
        if (size != 0) {
          k += r;
          if (k > scan.se || size > 10)
            return false;
          int32_t v = extend(bits.get(size), size);
          coef[k] = static_cast<int16_t>(static_cast<uint32_t>(v) << scan.al);
        } else if (r == 15) {
          k += 15; // sixteen zeros
        } else {
          eobrun = 1u << r;
          if (r != 0)
            eobrun += bits.get(r);
          --eobrun;
          break;
        }
      }
      return true;
    }
    // refinement
    if (eobrun == 0) {
      for (; k <= scan.se; ++k) {
        int rs = table.decode(bits);
        if (rs < 0)
          return false;
        int r = rs >> 4, size = rs & 15;
        int value = 0;
        if (size != 0) {
          if (size != 1)
            return false;
          value = bits.get(1) != 0 ? p1 : m1;
        } else if (r != 15) {
          eobrun = 1u << r;
          if (r != 0)
            eobrun += bits.get(static_cast<unsigned>(r));
          break;
        }
        // skip r zero coefficients (correcting the nonzero ones passed),
        // then set the new one
        do {
          int16_t& c = coef[k];
          if (c != 0)
            correct(c);
          else if (--r < 0)
            break;
          ++k;
        } while (k <= scan.se);
        if (value != 0) {
          if (k > scan.se)
            return false;
          coef[k] = static_cast<int16_t>(value);
        }
      }
    }
    if (eobrun > 0) {
      for (; k <= scan.se; ++k)
        if (coef[k] != 0)
          correct(coef[k]);
      --eobrun;
    }
    return true;
  };
  return for_each_block(f, scan.component.data(), 1, on_mcu, on_block) &&
         bits.ok();
}

/// Decodes the kept scans into `img`: the AC ones with `decode_ac_scan`, the
/// DC ones here (T.81 G.1.2.1: a first scan codes differences of the DC
/// value shifted right by Al; a refinement scan, one bit per block). False
/// on anything libjpeg would only warn about.
bool decode_kept_scans(const unsigned char* p,
                       const std::vector<kept_scan>& scans,
                       const frame_geometry& f, coefficients& img) {
  for (unsigned i = 0; i < f.ncomps; ++i) {
    const auto& c = (*f.comps)[i];
    img.stride[i] = f.mcus_across() * c.h;
    img.dc[i].assign(img.stride[i] * f.mcus_down() * c.v, 0);
    if (c.keeps_ac)
      img.ac[i].assign(img.dc[i].size() * 64, 0);
  }
  for (const auto& scan : scans) {
    if (scan.ss != 0) {
      if (!decode_ac_scan(p, scan, f, img))
        return false;
      continue;
    }
    std::array<huffman_decoder, 4> tables;
    for (unsigned i = 0; i < scan.count && scan.ah == 0; ++i)
      if (!tables[i].build(scan.dc_tables[scan.table[i]]))
        return false;
    bit_reader bits{p, scan.begin, scan.end};
    std::array<int32_t, 4> pred{};
    auto on_mcu = [&](unsigned long n) {
      if (restart_due(scan, n)) {
        if (!bits.restart())
          return false;
        pred.fill(0);
      }
      return true;
    };
    auto on_block = [&](unsigned slot, unsigned ci, unsigned long row,
                        unsigned long col) {
      int16_t& dc = img.dc[ci][row * img.stride[ci] + col];
      if (scan.ah != 0) { // refinement: the next bit of every value
        if (bits.get(1) != 0)
          dc = static_cast<int16_t>(dc | (1 << scan.al));
        return true;
      }
      int size = tables[slot].decode(bits);
      if (size < 0 || size > 11)
        return false;
      if (size > 0) // the difference from the previous block's value
        pred[slot] += extend(bits.get(static_cast<unsigned>(size)),
                             static_cast<unsigned>(size));
      dc = static_cast<int16_t>(static_cast<uint32_t>(pred[slot]) << scan.al);
      return true;
    };
    // every bit it used was data (not zeros made up at a marker)
    if (!for_each_block(f, scan.component.data(), scan.count, on_mcu,
                        on_block) ||
        !bits.ok())
      return false;
  }
  return true;
}

/// T.81 K.3's DC table (categories 0..11, every DC difference of 8-bit
/// samples) and AC table 0, whose one code, "0", is end-of-block (for the
/// components that decode 1x1).
constexpr unsigned char baseline_tables[] = {
    0xFF, 0xC4, 0x00, 0x31,                                             // DHT
    0x00, 0,    1,    5,    1, 1, 1, 1, 1, 1, 0,  0,  0,    0, 0, 0, 0, // DC 0
    0,    1,    2,    3,    4, 5, 6, 7, 8, 9, 10, 11, 0x10, 1, 0, 0, 0,
    0,    0,    0,    0,    0, 0, 0, 0, 0, 0, 0,  0, // AC 0
    0x00};

static_assert(sizeof baseline_tables == 2 + 0x31, "DHT length field");

/// AC table 1, for the components that keep their AC coefficients: every
/// symbol of 8-bit baseline coding (end-of-block, sixteen zeros, and run r
/// 0..15 with size 1..10) with a code of 8 bits, its index. Not optimal,
/// and simple: the thumbnail's decode reads these few blocks quickly.
struct ac_flat_table {
  static constexpr unsigned symbols = 162;
  std::array<unsigned char, 2 + 2 + 1 + 16 + symbols> dht{};
  std::array<uint8_t, 256> code{}; // by symbol
  ac_flat_table() {
    unsigned length = 2 + 1 + 16 + symbols;
    unsigned n = 0;
    dht[n++] = 0xFF;
    dht[n++] = 0xC4;
    dht[n++] = static_cast<unsigned char>(length >> 8);
    dht[n++] = static_cast<unsigned char>(length & 0xFF);
    dht[n++] = 0x11; // AC, table 1
    for (unsigned l = 1; l <= 16; ++l)
      dht[n++] = l == 8 ? symbols : 0;
    auto add = [&](unsigned symbol) {
      code[symbol] = static_cast<uint8_t>(n - 21);
      dht[n++] = static_cast<unsigned char>(symbol);
    };
    add(0x00); // end of block
    add(0xF0); // sixteen zeros
    for (unsigned r = 0; r < 16; ++r)
      for (unsigned size = 1; size <= 10; ++size)
        add(r << 4 | size);
  }
};

/// Codes and lengths of baseline_tables' DC table, by category.
struct dc_codes {
  std::array<unsigned, 12> code{}, length{};
  dc_codes() {
    unsigned c = 0, k = 0;
    for (unsigned l = 1; l <= 16; ++l) {
      for (unsigned n = 0; n < baseline_tables[4 + l]; ++n, ++k) {
        code[baseline_tables[21 + k]] = c++;
        length[baseline_tables[21 + k]] = l;
      }
      c <<= 1;
    }
  }
};

/// The baseline stream: `head` (SOI and the segments before the first scan,
/// SOF0 in place of SOF2), the tables, one scan of every component with its
/// DC values and, for each block, an end-of-block or its AC coefficients,
/// EOI. nullopt for a value no 8-bit baseline table codes (corrupt input).
std::optional<std::string> write_baseline(std::string head,
                                          const frame_geometry& f,
                                          const coefficients& img) {
  static const dc_codes codes;
  static const ac_flat_table ac_codes;
  std::string& out = head;
  out.append(reinterpret_cast<const char*>(baseline_tables),
             sizeof baseline_tables);
  bool any_ac = false;
  for (unsigned i = 0; i < f.ncomps; ++i)
    any_ac = any_ac || !img.ac[i].empty();
  if (any_ac)
    out.append(reinterpret_cast<const char*>(ac_codes.dht.data()),
               ac_codes.dht.size());
  const unsigned char sos[] = {0xFF, 0xDA, 0x00,
                               static_cast<unsigned char>(6 + 2 * f.ncomps),
                               static_cast<unsigned char>(f.ncomps)};
  out.append(reinterpret_cast<const char*>(sos), sizeof sos);
  std::array<unsigned, 4> order{};
  for (unsigned i = 0; i < f.ncomps; ++i) {
    order[i] = i;
    out.push_back(static_cast<char>((*f.comps)[i].id));
    // DC table 0; AC table 0 (end-of-block only), or 1
    out.push_back(img.ac[i].empty() ? '\0' : '\1');
  }
  out.append("\x00\x3F\x00", 3); // Ss 0, Se 63, Ah 0, Al 0
  bit_writer bits{out};
  std::array<int32_t, 4> pred{};
  out.reserve(out.size() + img.dc[0].size() * f.ncomps / 2 + 64);
  bool fits = for_each_block(
      f, order.data(), f.ncomps, [](unsigned long) { return true; },
      [&](unsigned, unsigned ci, unsigned long row, unsigned long col) {
        int32_t value = img.dc[ci][row * img.stride[ci] + col];
        int32_t diff = value - pred[ci];
        pred[ci] = value;
        unsigned size = bit_length(static_cast<unsigned>(std::abs(diff)));
        if (size > 11)
          return false;
        uint32_t extra = extra_bits(diff, size);
        if (img.ac[ci].empty()) {
          // the category's code, its bits, then end-of-block ("0")
          bits.put(((codes.code[size] << size) | extra) << 1,
                   codes.length[size] + size + 1);
          return true;
        }
        bits.put((codes.code[size] << size) | extra, codes.length[size] + size);
        // AC in zigzag order: runs of zeros, sixteen at a time, then the
        // value's size and bits (T.81 F.1.2.2)
        const int16_t* ac = &img.ac[ci][(row * img.stride[ci] + col) * 64];
        unsigned run = 0;
        for (unsigned k = 1; k < 64; ++k) {
          int32_t v = ac[k];
          if (v == 0) {
            ++run;
            continue;
          }
          for (; run > 15; run -= 16)
            bits.put(ac_codes.code[0xF0], 8);
          unsigned s = bit_length(static_cast<unsigned>(std::abs(v)));
          if (s > 10)
            return false;
          bits.put((uint32_t{ac_codes.code[run << 4 | s]} << s) |
                       extra_bits(v, s),
                   8 + s);
          run = 0;
        }
        if (run > 0)
          bits.put(ac_codes.code[0x00], 8); // end of block
        return true;
      });
  if (!fits)
    return std::nullopt;
  bits.finish();
  out.append("\xFF\xD9", 2);
  return std::move(out);
}

} // namespace

std::optional<std::string> jpeg_dc_scans(const void* data, size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  if (p == nullptr || size < 4 || p[0] != 0xFF || p[1] != 0xD8)
    return std::nullopt;
  // Both forms are written as the segments go by: `out` the progressive
  // one, `head` the start of the baseline one (up to the first scan).
  std::string out, head;
  out.reserve(size / 8 + 1024);
  out.append(reinterpret_cast<const char*>(p), 2);
  head.append(reinterpret_cast<const char*>(p), 2);

  std::array<component, 4> comps{};
  frame_geometry frame{};
  frame.comps = &comps;
  bool have_frame = false, dropped = false, in_scans = false;
  // what the baseline form needs: the scans it decodes, with their tables
  std::vector<kept_scan> kept_scans;
  std::array<huffman_spec, 4> dc_tables{}, ac_tables{};
  unsigned restart_interval = 0;
  bool baseline_ok = true; // no table or interval it cannot follow
  size_t dc_bytes = 0;
  // T.81 G.1.1.1.2: a coefficient's first scan, then its refinements one
  // bit at a time; anything else libjpeg warns about, and the baseline form
  // is not attempted.
  auto progress = [&](component& c, unsigned k, unsigned ah, unsigned al) {
    int& known = c.known[k];
    if (ah == 0 ? known != -1 : (known != static_cast<int>(ah) || al + 1 != ah))
      baseline_ok = false;
    known = static_cast<int>(al);
  };
  auto find = [&](unsigned id) -> int {
    for (unsigned i = 0; i < frame.ncomps; ++i)
      if (comps[i].id == id)
        return static_cast<int>(i);
    return -1;
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
    size_t segment = pos; // the length field
    pos += length;
    auto keep = [&](size_t end) {
      out.append(reinterpret_cast<const char*>(p + start), end - start);
    };
    auto keep_in_head = [&](unsigned as_marker) {
      if (in_scans)
        return; // libvips reads the segments before the first scan only
      head.push_back('\xFF');
      head.push_back(static_cast<char>(as_marker));
      head.append(reinterpret_cast<const char*>(p + segment), length);
    };

    if (marker == 0xC2) { // SOF2: progressive, Huffman
      if (have_frame || body_size < 6)
        return std::nullopt;
      frame.height = be16(body + 1);
      frame.width = be16(body + 3);
      frame.ncomps = body[5];
      if (body[0] != 8 || frame.width == 0 || frame.height == 0 ||
          frame.ncomps == 0 || frame.ncomps > 4 ||
          body_size != 6 + 3 * size_t{frame.ncomps})
        return std::nullopt;
      for (unsigned i = 0; i < frame.ncomps; ++i) {
        auto& c = comps[i];
        c.id = body[6 + 3 * i];
        c.h = body[7 + 3 * i] >> 4;
        c.v = body[7 + 3 * i] & 15u;
        if (c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4)
          return std::nullopt;
        for (unsigned j = 0; j < i; ++j)
          if (comps[j].id == c.id)
            return std::nullopt;
        frame.max_h = std::max(frame.max_h, c.h);
        frame.max_v = std::max(frame.max_v, c.v);
      }
      for (unsigned i = 0; i < frame.ncomps; ++i) {
        comps[i].keeps_ac =
            idct_larger_than_1x1(comps[i], frame.max_h, frame.max_v);
        comps[i].known.fill(-1);
      }
      have_frame = true;
      keep(pos);
      keep_in_head(0xC0);        // the same frame, baseline
    } else if (marker == 0xDA) { // SOS
      if (!have_frame || body_size < 1)
        return std::nullopt;
      unsigned count = body[0];
      if (count < 1 || count > 4 || body_size != 4 + 2 * size_t{count})
        return std::nullopt;
      unsigned ss = body[1 + 2 * count], se = body[2 + 2 * count];
      unsigned ah = body[3 + 2 * count] >> 4, al = body[3 + 2 * count] & 15u;
      size_t end = jpeg_entropy_end(p, pos, size);
      if (end == jpeg_data_runs_on)
        return std::nullopt;
      in_scans = true;
      kept_scan scan; // for the baseline form, if the scan is kept
      scan.begin = pos;
      scan.end = end;
      scan.count = count;
      scan.ss = ss;
      scan.se = se;
      scan.ah = ah;
      scan.al = al;
      scan.restart_interval = restart_interval;
      if (ss == 0) { // DC scan, possibly interleaved
        if (se != 0)
          return std::nullopt;
        scan.dc_tables = dc_tables;
        for (unsigned i = 0; i < count; ++i) {
          // in the frame's order (T.81 B.2.3; libjpeg refuses others)
          int ci = find(body[1 + 2 * i]);
          if (ci < 0 ||
              (i > 0 && ci <= static_cast<int>(scan.component[i - 1])))
            return std::nullopt;
          comps[ci].has_dc = comps[ci].has_dc || ah == 0;
          progress(comps[ci], 0, ah, al);
          scan.component[i] = static_cast<unsigned>(ci);
          scan.table[i] = body[2 + 2 * i] >> 4;
          if (scan.table[i] > 3)
            baseline_ok = false;
        }
        if (al > 13 || (ah != 0 && ah != al + 1))
          baseline_ok = false; // libjpeg refuses or warns
        dc_bytes += end - pos;
        kept_scans.push_back(scan);
        keep(end);
      } else { // AC scan: one component (T.81 G.1.1.1.1)
        int ci = count == 1 ? find(body[1]) : -1;
        if (ci < 0 || se < ss || se > 63)
          return std::nullopt;
        auto& c = comps[ci];
        if (ah == 0)
          for (unsigned k = ss; k <= se; ++k)
            c.ac_sent.set(k);
        if (c.keeps_ac) {
          keep(end);
          for (unsigned k = ss; k <= se; ++k)
            progress(c, k, ah, al);
          scan.component[0] = static_cast<unsigned>(ci);
          unsigned slot = body[2] & 15u;
          if (slot > 3 || al > 13)
            baseline_ok = false;
          else
            scan.ac_table = ac_tables[slot];
          kept_scans.push_back(scan);
        } else {
          dropped = true;
        }
      }
      pos = end;
    } else if (marker == 0xC4) { // DHT: kept; its tables noted
      keep(pos);
      size_t at = 0;
      while (at < body_size) {
        if (body_size - at < 17) {
          baseline_ok = false;
          break;
        }
        unsigned cls = body[at] >> 4, slot = body[at] & 15u;
        huffman_spec spec;
        size_t symbols = 0;
        for (unsigned l = 1; l <= 16; ++l)
          symbols += spec.bits[l] = body[at + l];
        if (cls > 1 || slot > 3 || symbols > 256 ||
            body_size - at - 17 < symbols) {
          baseline_ok = false;
          break;
        }
        std::memcpy(spec.values.data(), body + at + 17, symbols);
        spec.defined = true;
        (cls == 0 ? dc_tables : ac_tables)[slot] = spec;
        at += 17 + symbols;
      }
    } else if (marker == 0xDD) { // DRI
      keep(pos);
      if (body_size == 2)
        restart_interval = be16(body);
      else
        baseline_ok = false;
    } else if (marker == 0xDB || marker == 0xFE ||
               (marker >= 0xE0 && marker <= 0xEF)) {
      // quantisation tables, comments, APPn: kept, except XMP
      // (APP1 "http://ns.adobe.com/xap/1.0/", and its extension segments)
      constexpr char xmp[] = "http://ns.adobe.com/";
      bool is_xmp = marker == 0xE1 && body_size >= sizeof xmp - 1 &&
                    std::memcmp(body, xmp, sizeof xmp - 1) == 0;
      if (!is_xmp) {
        keep(pos);
        keep_in_head(marker);
      }
      // libjpeg takes a component's quantisation table when its first scan
      // starts: one redefined later is not the baseline form's to follow
      if (marker == 0xDB && in_scans)
        baseline_ok = false;
    } else {
      // another frame type (baseline, arithmetic, lossless, hierarchical),
      // DNL, a second SOI, a stray restart marker: not for this rewrite
      return std::nullopt;
    }
  }

  if (!have_frame || !dropped)
    return std::nullopt;
  unsigned long blocks = 0, ac_blocks = 0;
  unsigned blocks_per_mcu = 0;
  for (unsigned i = 0; i < frame.ncomps; ++i) {
    const auto& c = comps[i];
    if (!c.has_dc)
      return std::nullopt;
    if (!c.keeps_ac && c.ac_sent.count() != 63) // every one of 1..63
      return std::nullopt;
    if (c.keeps_ac) // every coefficient to its last bit, or libjpeg smooths
      for (int known : c.known)
        baseline_ok = baseline_ok && known == 0;
    unsigned long padded = frame.mcus_across() * c.h * frame.mcus_down() * c.v;
    blocks += padded;
    if (c.keeps_ac)
      ac_blocks += padded;
    blocks_per_mcu += c.h * c.v;
  }

  // The baseline form: at most 10 blocks an MCU (libjpeg's limit), and no
  // more blocks than the DC scans have bits (each block costs at least
  // one), so that what is allocated here is bounded by the input's size
  // (the AC coefficients kept, 128 bytes a block, at most 16 times it).
  if (baseline_ok && (frame.ncomps == 1 || blocks_per_mcu <= 10) &&
      blocks <= 8 * dc_bytes + 64 && ac_blocks * 128 <= 16 * size) {
    coefficients img;
    if (decode_kept_scans(p, kept_scans, frame, img))
      if (auto baseline = write_baseline(std::move(head), frame, img))
        return baseline;
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
  for (unsigned i = 0; i < frame.ncomps; ++i) {
    const auto& c = comps[i];
    if (!c.keeps_ac) // every block of the component
      append_zero_ac_scan(out, c,
                          frame.blocks_across(c) * frame.blocks_down(c));
  }
  out.append("\xFF\xD9", 2);
  return out;
}

} // namespace resized::imaging
