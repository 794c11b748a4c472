#include "yaml_reader.hpp"

#include <cmath>
#include <stdexcept>

namespace ft::detail {

std::string context_of(const caf::error& err) {
  if (!err || err.context().empty()
      || !err.context().match_element<std::string>(0))
    return {};
  return err.context().get_as<std::string>(0);
}

caf::error in_section(const caf::error& err, const std::string& source,
                      const std::string& section, errc code) {
  auto ctx = context_of(err);
  if (ctx.compare(0, source.size(), source) != 0)
    return err;
  auto pos = ctx.find(": ", source.size());
  if (pos == std::string::npos)
    return err;
  return make_error(code, ctx.insert(pos + 2, section + "."));
}

yaml_reader::yaml_reader(YAML::Node root, std::string source, errc code)
  : root_(std::move(root)), source_(std::move(source)), code_(code) {
  // nop
}

std::string yaml_reader::where(const YAML::Node& node) const {
  auto mark = node.Mark();
  if (mark.line < 0)
    return source_;
  return source_ + ":" + std::to_string(mark.line + 1);
}

caf::error yaml_reader::fail(const YAML::Node& node, const std::string& field,
                             const std::string& what) const {
  return fail(code_, node, field, what);
}

caf::error yaml_reader::fail(errc code, const YAML::Node& node,
                             const std::string& field,
                             const std::string& what) const {
  return make_error(code, where(node) + ": " + field + " " + what);
}

caf::expected<std::string> yaml_reader::text(const std::string& field) const {
  auto node = root_[field];
  if (!node.IsScalar())
    return fail(node, field, "must be a scalar");
  return node.Scalar();
}

caf::expected<double> yaml_reader::number(const std::string& field) const {
  auto str = text(field);
  if (!str)
    return str.error();
  try {
    size_t pos = 0;
    auto result = std::stod(*str, &pos);
    if (pos != str->size() || !std::isfinite(result))
      throw std::invalid_argument("trailing characters");
    return result;
  } catch (std::exception&) {
    return fail(root_[field], field, "= '" + *str + "' is not a number");
  }
}

caf::expected<int> yaml_reader::integer(const std::string& field) const {
  return integer(field, code_);
}

caf::expected<int> yaml_reader::integer(const std::string& field,
                                        errc code) const {
  auto x = number(field);
  if (!x)
    return x.error();
  if (std::floor(*x) != *x || std::fabs(*x) > 1e9)
    return fail(code, root_[field], field,
                "= '" + root_[field].Scalar() + "' is not an integer");
  return static_cast<int>(*x);
}

caf::expected<caf::timespan>
yaml_reader::seconds(const std::string& field) const {
  return seconds(field, code_);
}

caf::expected<caf::timespan> yaml_reader::seconds(const std::string& field,
                                                  errc code) const {
  auto x = number(field);
  if (!x)
    return x.error();
  if (*x < 0 || *x > 1e9)
    return fail(code, root_[field], field,
                "= " + root_[field].Scalar()
                  + " is out of range (seconds >= 0)");
  return std::chrono::duration_cast<caf::timespan>(
    std::chrono::duration<double>(*x));
}

caf::expected<bool> yaml_reader::boolean(const std::string& field) const {
  auto str = text(field);
  if (!str)
    return str.error();
  bool result = false;
  if (!YAML::convert<bool>::decode(root_[field], result))
    return fail(root_[field], field, "= '" + *str + "' is not true or false");
  return result;
}

bool yaml_reader::has(const std::string& field) const {
  return static_cast<bool>(root_[field]);
}

namespace {

template <class T, class Read>
caf::error read_if_present(const yaml_reader& in, const std::string& field,
                           T& dst, Read read) {
  if (!in.has(field))
    return caf::none;
  auto x = read(field);
  if (!x)
    return std::move(x.error());
  dst = std::move(*x);
  return caf::none;
}

} // namespace

caf::error yaml_reader::read_optional(const std::string& field,
                                      int& dst) const {
  return read_if_present(*this, field, dst,
                         [this](const std::string& f) { return integer(f); });
}

caf::error yaml_reader::read_optional(const std::string& field,
                                      double& dst) const {
  return read_if_present(*this, field, dst,
                         [this](const std::string& f) { return number(f); });
}

caf::error yaml_reader::read_optional(const std::string& field,
                                      caf::timespan& dst) const {
  return read_if_present(*this, field, dst,
                         [this](const std::string& f) { return seconds(f); });
}

caf::error yaml_reader::read_optional(const std::string& field,
                                      bool& dst) const {
  return read_if_present(*this, field, dst,
                         [this](const std::string& f) { return boolean(f); });
}

caf::error yaml_reader::read_optional(const std::string& field,
                                      std::string& dst) const {
  return read_if_present(*this, field, dst,
                         [this](const std::string& f) { return text(f); });
}

caf::error yaml_reader::check_known(const std::set<std::string>& known) const {
  for (auto kvp : root_) {
    auto key = kvp.first.IsScalar() ? kvp.first.Scalar() : std::string{"?"};
    if (known.count(key) == 0) {
      std::string list;
      for (auto& k : known)
        list += (list.empty() ? "" : ", ") + k;
      return fail(code_, kvp.first, key,
                  "is not a known field (known: " + list + ")");
    }
  }
  return caf::none;
}

caf::error yaml_reader::locate(const caf::error& err,
                               const std::string& fallback) const {
  if (!err || err.context().empty()
      || !err.context().match_element<std::string>(0))
    return err;
  auto ctx = err.context().get_as<std::string>(0);
  auto field = ctx.substr(0, ctx.find(' '));
  // (A YAML::Node cannot be rebound: operator= assigns into the node and
  // reset() throws on a missing key, so pick the position directly.)
  auto position = [&]() -> std::string {
    if (auto node = root_[field])
      return where(node);
    if (!fallback.empty())
      if (auto node = root_[fallback])
        return where(node);
    return source_;
  };
  return caf::error{err.code(), err.category(),
                    caf::make_message(position() + ": " + ctx)};
}

caf::expected<YAML::Node> load_mapping(const std::string& text,
                                       const std::string& source, errc code,
                                       const std::string& what) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& ex) {
    return yaml_error(ex, source, code);
  }
  if (!root.IsNull() && !root.IsMap())
    return make_error(code, source + ": expected a mapping of " + what);
  return root;
}

caf::error yaml_error(const YAML::Exception& ex, const std::string& source,
                      errc code) {
  return make_error(code, source + ":" + std::to_string(ex.mark.line + 1)
                            + ": " + ex.msg);
}

} // namespace ft::detail
