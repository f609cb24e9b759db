#include "kd/data/data_config.h"

#include "kd/data/text_dataset.h"

namespace kd {

DataConfig DataConfig::from(ConfigNode s) {
  DataConfig c;
  c.train = s.require<std::string>("train");
  c.valid = s.get<std::string>("valid", "");
  c.table.format = parse_table_format(s.get<std::string>("format", "auto"));
  c.table.header = s.get<bool>("header", true);
  c.table.text_columns = s.get_list("text", {"sentence"});
  if (c.table.text_columns.empty() || c.table.text_columns.size() > 2)
    throw ConfigError(located(s.where("text"), "expected one text column, or two for sentence pairs"));
  c.table.label_column = s.get<std::string>("label", "label");
  c.valid_fraction = s.get<double>("valid_fraction", 0.1);
  if (c.valid.empty() && !(c.valid_fraction > 0 && c.valid_fraction < 1))
    throw ConfigError(located(s.where("valid_fraction"), "must be in (0, 1) when no valid file is given"));
  c.split_seed = static_cast<uint64_t>(s.get<int64_t>("split_seed", 13));
  return c;
}

DataSplits read_splits(const DataConfig& c) {
  DataSplits d;
  auto rows = read_table(c.train, c.table);
  d.train_source = c.train;
  if (c.valid.empty()) {
    std::tie(d.train, d.valid) = split_rows(rows, c.valid_fraction, c.split_seed);
    d.valid_source = c.train + " (valid split)";
  } else {
    d.train = std::move(rows);
    d.valid = read_table(c.valid, c.table);
    d.valid_source = c.valid;
  }
  return d;
}

}  // namespace kd
