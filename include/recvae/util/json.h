#pragma once
// A minimal JSON object writer for metrics.jsonl, final.json and benchmark output.
#include <cstdint>
#include <string>

namespace recvae {

/// Builds one JSON object, keys in insertion order.
class JsonObject {
 public:
  /// Adds a number (NaN and infinities are written as null).
  JsonObject& add(const std::string& key, double value);
  /// Adds an integer.
  JsonObject& add(const std::string& key, std::int64_t value);
  /// Adds an int.
  JsonObject& add(const std::string& key, int value) { return add(key, static_cast<std::int64_t>(value)); }
  /// Adds a string.
  JsonObject& add(const std::string& key, const std::string& value);
  /// Adds a C string.
  JsonObject& add(const std::string& key, const char* value) { return add(key, std::string(value)); }
  /// Adds a boolean.
  JsonObject& add(const std::string& key, bool value);
  /// Adds a nested object.
  JsonObject& add(const std::string& key, const JsonObject& value);
  /// The object's text, on one line.
  std::string str() const { return "{" + body_ + "}"; }

 private:
  void key(const std::string& k);
  std::string body_;
};

/// `s` as a quoted JSON string.
std::string json_quote(const std::string& s);

}  // namespace recvae
