#include <gtest/gtest.h>

#include "kd/error.h"
#include "kd/eval/metrics.h"

namespace kd {
namespace {

TEST(MetricsTest, AccuracyAndMacroF1FromCounts) {
  ConfusionMatrix m(3);
  // labels:      0 0 0 1 1 2
  // predictions: 0 0 1 1 2 2
  m.add(torch::tensor({0, 0, 1, 1, 2, 2}), torch::tensor({0, 0, 0, 1, 1, 2}));
  EXPECT_EQ(m.total(), 6);
  EXPECT_NEAR(m.accuracy(), 4.0 / 6.0, 1e-12);
  // F1 per class: c0 = 2*2/(3+2) = 0.8, c1 = 2*1/(2+2) = 0.5, c2 = 2*1/(1+2) = 2/3.
  EXPECT_NEAR(m.macro_f1(), (0.8 + 0.5 + 2.0 / 3.0) / 3.0, 1e-12);
  EXPECT_EQ(m.at(1, 2), 1);
}

TEST(MetricsTest, UnlabelledRowsAreSkippedAndRangeChecked) {
  ConfusionMatrix m(2);
  m.add(torch::tensor({1, 0}), torch::tensor({-1, 0}));
  EXPECT_EQ(m.total(), 1);
  EXPECT_DOUBLE_EQ(m.accuracy(), 1.0);
  EXPECT_THROW(m.add(2, 0), Error);
}

}  // namespace
}  // namespace kd
