// A value or a `failure`: how layers hand results across their edges
// (exceptions stay inside a layer). C++17 has no std::expected.
#pragma once

#include <utility>
#include <variant>

#include "common/error_code.hpp"

namespace resized {

template <class T>
class outcome {
public:
  outcome(T value) : data_(std::move(value)) {}
  outcome(failure err) : data_(std::move(err)) {}
  outcome(error_code code, std::string message)
      : data_(failure{code, std::move(message)}) {}

  explicit operator bool() const noexcept { return data_.index() == 0; }
  bool ok() const noexcept { return data_.index() == 0; }

  T& value() & { return std::get<0>(data_); }
  const T& value() const& { return std::get<0>(data_); }
  T&& value() && { return std::get<0>(std::move(data_)); }
  T* operator->() { return &std::get<0>(data_); }
  const T* operator->() const { return &std::get<0>(data_); }
  T& operator*() & { return std::get<0>(data_); }

  const failure& error() const& { return std::get<1>(data_); }
  failure&& error() && { return std::get<1>(std::move(data_)); }

private:
  std::variant<T, failure> data_;
};

} // namespace resized
