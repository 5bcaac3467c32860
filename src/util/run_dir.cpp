#include "recvae/util/run_dir.h"

#include <fstream>
#include <sstream>

namespace recvae {

std::vector<std::string> RunDir::outputs() const {
  return {metrics(), final_json(), config(), best_model(), model_export(), curves(), checkpoints()};
}

std::string RunDir::model_type() const {
  std::ifstream in(final_json());
  if (!in) return "";
  std::stringstream text;
  text << in.rdbuf();
  return json_top_level_string(text.str(), "model");
}

namespace {

// Reads the JSON string starting at text[i] == '"'; returns its value and moves i past it.
std::string read_string(const std::string& text, size_t& i) {
  std::string out;
  for (++i; i < text.size() && text[i] != '"'; ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      const char e = text[++i];
      out += e == 'n' ? '\n' : e == 't' ? '\t' : e;  // \uXXXX is not needed for model names
    } else {
      out += text[i];
    }
  }
  ++i;
  return out;
}

}  // namespace

std::string json_top_level_string(const std::string& text, const std::string& key) {
  int depth = 0;
  bool expect_key = false;
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (c == '"') {
      const bool is_key = depth == 1 && expect_key;
      const std::string s = read_string(text, i);
      if (!is_key) continue;
      expect_key = false;
      while (i < text.size() && (text[i] == ' ' || text[i] == ':')) ++i;
      if (s == key) {
        if (i < text.size() && text[i] == '"') return read_string(text, i);
        return "";
      }
      continue;
    }
    if (c == '{' || c == '[') ++depth;
    if (c == '}' || c == ']') --depth;
    if ((c == '{' && depth == 1) || (c == ',' && depth == 1)) expect_key = true;
    ++i;
  }
  return "";
}

}  // namespace recvae
