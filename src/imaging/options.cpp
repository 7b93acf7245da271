#include "imaging/options.hpp"

namespace resized::imaging {

std::string_view to_string(fit_mode mode) {
  switch (mode) {
  case fit_mode::fill:
    return "fill";
  case fit_mode::fit:
    return "fit";
  case fit_mode::force:
    return "force";
  }
  return "fill";
}

std::string_view to_string(output_format format) {
  switch (format) {
  case output_format::jpeg:
    return "jpeg";
  case output_format::png:
    return "png";
  case output_format::webp:
    return "webp";
  case output_format::avif:
    return "avif";
  }
  return "jpeg";
}

std::string_view to_string(input_format format) {
  switch (format) {
  case input_format::jpeg:
    return "jpeg";
  case input_format::png:
    return "png";
  case input_format::webp:
    return "webp";
  case input_format::gif:
    return "gif";
  case input_format::tiff:
    return "tiff";
  case input_format::heif:
    return "heif";
  case input_format::unknown:
    break;
  }
  return "unknown";
}

bool parse(std::string_view text, fit_mode& out) {
  if (text == "fill")
    out = fit_mode::fill;
  else if (text == "fit")
    out = fit_mode::fit;
  else if (text == "force")
    out = fit_mode::force;
  else
    return false;
  return true;
}

bool parse(std::string_view text, output_format& out) {
  if (text == "jpeg" || text == "jpg")
    out = output_format::jpeg;
  else if (text == "png")
    out = output_format::png;
  else if (text == "webp")
    out = output_format::webp;
  else if (text == "avif")
    out = output_format::avif;
  else
    return false;
  return true;
}

std::string_view mime_type(output_format format) {
  switch (format) {
  case output_format::jpeg:
    return "image/jpeg";
  case output_format::png:
    return "image/png";
  case output_format::webp:
    return "image/webp";
  case output_format::avif:
    return "image/avif";
  }
  return "application/octet-stream";
}

std::string_view extension(output_format format) {
  switch (format) {
  case output_format::jpeg:
    return "jpg";
  case output_format::png:
    return "png";
  case output_format::webp:
    return "webp";
  case output_format::avif:
    return "avif";
  }
  return "bin";
}

bool from_extension(std::string_view ext, output_format& out) {
  return parse(ext, out);
}

} // namespace resized::imaging
