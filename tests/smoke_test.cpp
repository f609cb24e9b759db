#include <gtest/gtest.h>
#include "kd/error.h"
TEST(ErrorTest, Located) { EXPECT_EQ(kd::located("a.txt:3", "bad", "fix"), "a.txt:3: bad (hint: fix)"); }
