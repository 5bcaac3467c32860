#pragma once
// How a config value reads to a person: configs/README.md's defaults (--config-keys) and the
// lines a run prints about values it took from elsewhere (RaCT's adopted actor section).
#include <string>

namespace YAML {
class Node;
}

namespace recvae {

/// A config value as the docs write it: numbers with 6 significant digits (0.3, where config.yaml
/// keeps 0.29999999999999999 for an exact round trip), lists in brackets.
std::string shown_value(const YAML::Node& value);

}  // namespace recvae
