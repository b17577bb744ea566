// Model kinds, sizes and the meta.json record (no LibTorch here).
#include <stdexcept>

#include <boost/json.hpp>

#include "models/json_fields.hpp"
#include "models/model.hpp"

namespace qtos::models {

template <>
struct json::JsonFields<ModelHyper> {
  static constexpr auto fields =
      std::make_tuple(json::member("hidden", &ModelHyper::hidden), json::member("layers", &ModelHyper::layers),
                      json::member("d_model", &ModelHyper::d_model), json::member("heads", &ModelHyper::heads),
                      json::member("patch", &ModelHyper::patch));
};

template <>
struct json::JsonFields<Normalizer> {
  static constexpr auto fields = std::make_tuple(json::member("mean", &Normalizer::mean), json::member("inv_std", &Normalizer::inv_std),
                                                 json::member("clip", &Normalizer::clip));
};

template <>
struct json::JsonFields<TimeSplit> {
  static constexpr auto fields = std::make_tuple(
      json::member("train_begin", &TimeSplit::train_begin), json::member("train_end", &TimeSplit::train_end),
      json::member("val_begin", &TimeSplit::val_begin), json::member("val_end", &TimeSplit::val_end),
      json::member("test_begin", &TimeSplit::test_begin), json::member("test_end", &TimeSplit::test_end),
      json::member("purge", &TimeSplit::purge));
};

namespace {

constexpr std::string_view kWhat = "model metadata";
std::int64_t need_int(const boost::json::object& o, const char* key) { return json::field_int(o, key, kWhat); }
std::string need_string(const boost::json::object& o, const char* key) { return json::field_string(o, key, kWhat); }
const boost::json::object& need_object(const boost::json::object& o, const char* key) { return json::field_object(o, key, kWhat); }

}  // namespace

std::string_view model_kind_name(ModelKind kind) { return enum_name(kind); }

ModelKind model_kind_parse(std::string_view text, std::string_view what) {
  if (const auto k = enum_parse<ModelKind>(text); k && text == enum_name(*k)) return *k;  // exact case, as stored
  throw std::invalid_argument(std::string(what) + ": unknown model '" + std::string(text) + "' (expected " +
                              enum_names_joined<ModelKind>() + ")");
}

void ModelHyper::validate(ModelKind kind, const FeatureSpec& spec) const {
  auto bad = [](const std::string& what) { throw std::invalid_argument("model sizes: " + what); };
  if (hidden < 1 || hidden > 4096) bad("hidden = " + std::to_string(hidden) + " (expected 1..4096)");
  if (layers < 1 || layers > 16) bad("layers = " + std::to_string(layers) + " (expected 1..16)");
  if (kind == ModelKind::transformer) {
    if (d_model < 1 || d_model > 4096) bad("d_model = " + std::to_string(d_model) + " (expected 1..4096)");
    if (heads < 1 || d_model % heads != 0)
      bad("heads = " + std::to_string(heads) + " must divide d_model = " + std::to_string(d_model));
    if (patch < 1 || spec.window % patch != 0)
      bad("patch = " + std::to_string(patch) + " must divide the feature window " + std::to_string(spec.window));
  }
}

std::string ModelMeta::to_json() const {
  boost::json::object o;
  o["format"] = 1;
  o["name"] = name;
  o["version"] = version;
  o["kind"] = model_kind_name(kind);
  o["hyper"] = json::to_object(hyper);
  o["feature_spec"] = boost::json::parse(spec.to_json());
  o["feature_names"] = boost::json::value_from(spec.names());
  o["target"] = {{"kind", "forward log return over horizon bars, and its sign"}, {"horizon", spec.horizon}};
  o["normalizer"] = json::to_object(normalizer);
  o["split"] = json::to_object(split);
  o["training_window"] = {{"train_from_ms", train_from_ms}, {"train_to_ms", train_to_ms}, {"test_to_ms", test_to_ms}};
  o["metrics"] = {{"validation", boost::json::parse(val.to_json())},
                  {"test", boost::json::parse(test.to_json())},
                  {"baseline_test", boost::json::parse(baseline_test.to_json())}};
  o["epochs_run"] = epochs_run;
  o["best_epoch"] = best_epoch;
  o["seed"] = seed;
  o["device"] = device;
  o["versions"] = {{"torch", torch_version}, {"qtos", qtos_version}};
  o["created_ms"] = created_ms;
  return boost::json::serialize(o);
}

ModelMeta ModelMeta::from_json(const std::string& text) {
  const boost::json::object o = json::parse_object(text, kWhat);
  if (need_int(o, "format") != 1)
    throw std::invalid_argument("model metadata: format " + std::to_string(need_int(o, "format")) + " (this build reads 1)");
  ModelMeta m;
  m.name = need_string(o, "name");
  m.version = static_cast<std::int32_t>(need_int(o, "version"));
  m.kind = model_kind_parse(need_string(o, "kind"), "model metadata 'kind'");
  json::from_object(need_object(o, "hyper"), m.hyper, "model metadata 'hyper'");
  m.spec = FeatureSpec::from_json_object(need_object(o, "feature_spec"));
  json::from_object(need_object(o, "normalizer"), m.normalizer, "model metadata 'normalizer'");
  if (m.normalizer.mean.size() != static_cast<std::size_t>(m.spec.n_features()) ||
      m.normalizer.inv_std.size() != m.normalizer.mean.size())
    throw std::invalid_argument("model metadata: normalizer has " + std::to_string(m.normalizer.mean.size()) +
                                " features, the feature spec " + std::to_string(m.spec.n_features()));
  json::from_object(need_object(o, "split"), m.split, "model metadata 'split'");
  const auto& tw = need_object(o, "training_window");
  m.train_from_ms = need_int(tw, "train_from_ms");
  m.train_to_ms = need_int(tw, "train_to_ms");
  m.test_to_ms = need_int(tw, "test_to_ms");
  const auto& mt = need_object(o, "metrics");
  m.val = Metrics::from_json_object(need_object(mt, "validation"));
  m.test = Metrics::from_json_object(need_object(mt, "test"));
  m.baseline_test = Metrics::from_json_object(need_object(mt, "baseline_test"));
  m.epochs_run = static_cast<std::int32_t>(need_int(o, "epochs_run"));
  m.best_epoch = static_cast<std::int32_t>(need_int(o, "best_epoch"));
  m.seed = json::field(o, "seed", kWhat).to_number<std::uint64_t>();
  m.device = need_string(o, "device");
  const auto& ver = need_object(o, "versions");
  m.torch_version = need_string(ver, "torch");
  m.qtos_version = need_string(ver, "qtos");
  m.created_ms = need_int(o, "created_ms");
  m.hyper.validate(m.kind, m.spec);
  return m;
}

}  // namespace qtos::models
