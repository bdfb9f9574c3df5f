#include "service/validation/field_path.h"

#include <string>

#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

TEST(FieldPathTest, RootIsEmpty) {
  const FieldPath root;
  EXPECT_EQ(root.ToString(), "");
  EXPECT_EQ(root.TopLevelField(), "");
}

TEST(FieldPathTest, FieldsAndIndexes) {
  const FieldPath root;
  const FieldPath users = root.Field("users");
  const FieldPath row = users.Index(3);
  EXPECT_EQ(users.ToString(), "users");
  EXPECT_EQ(row.ToString(), "users[3]");
  EXPECT_EQ(row.Field("user_id").ToString(), "users[3].user_id");
  EXPECT_EQ(row.Field("user_id").TopLevelField(), "users");
  const FieldPath company = root.Field("company");
  EXPECT_EQ(company.Field("company_id").ToString(), "company.company_id");
}

std::string KeyPath(const std::string& key) {
  const FieldPath root;
  const FieldPath metadata = root.Field("metadata");
  return metadata.Key(key).ToString();
}

TEST(FieldPathTest, IdentifierKeysUseADot) {
  EXPECT_EQ(KeyPath("plan"), "metadata.plan");
  EXPECT_EQ(KeyPath("_x9"), "metadata._x9");
  EXPECT_EQ(KeyPath("CamelCase"), "metadata.CamelCase");
}

TEST(FieldPathTest, OtherKeysAreQuoted) {
  EXPECT_EQ(KeyPath(""), R"(metadata[""])");
  EXPECT_EQ(KeyPath("a.b"), R"(metadata["a.b"])");
  EXPECT_EQ(KeyPath("9lives"), R"(metadata["9lives"])");
  EXPECT_EQ(KeyPath("first name"), R"(metadata["first name"])");
  EXPECT_EQ(KeyPath("a[0]"), R"(metadata["a[0]"])");
  EXPECT_EQ(KeyPath("say \"hi\""), R"(metadata["say \"hi\""])");
  EXPECT_EQ(KeyPath("back\\slash"), R"(metadata["back\\slash"])");
  EXPECT_EQ(KeyPath("tab\t"), R"(metadata["tab\u0009"])");
  EXPECT_EQ(KeyPath(std::string("nul\0", 4)), R"(metadata["nul\u0000"])");
  EXPECT_EQ(KeyPath("c1\xc2\x85"), R"(metadata["c1\u0085"])");
  EXPECT_EQ(KeyPath("bad\xff\xfe"), R"(metadata["bad\xFF\xFE"])");
  EXPECT_EQ(KeyPath("plän"), R"(metadata["plän"])");
  EXPECT_EQ(KeyPath("日本"), R"(metadata["日本"])");
}

TEST(FieldPathTest, LongKeysAreShortened) {
  EXPECT_EQ(KeyPath(std::string(64, 'a')), "metadata." + std::string(64, 'a'));
  EXPECT_EQ(KeyPath(std::string(65, 'a')), "metadata[\"" + std::string(48, 'a') + "\"...]");
  // The cut backs off to a character boundary: 47 ASCII bytes, then "é" (2 bytes) across byte 48.
  const std::string key = std::string(47, 'a') + "é" + std::string(40, 'b');
  EXPECT_EQ(KeyPath(key), "metadata[\"" + std::string(47, 'a') + "\"...]");
}

TEST(FieldPathTest, KeyInsideAList) {
  const FieldPath root;
  const FieldPath users = root.Field("users");
  const FieldPath row = users.Index(0);
  const FieldPath metadata = row.Field("metadata");
  EXPECT_EQ(metadata.Key("a.b").ToString(), R"(users[0].metadata["a.b"])");
  EXPECT_EQ(metadata.Key("ok").ToString(), "users[0].metadata.ok");
}

TEST(FieldPathTest, IndexAtTheTop) {
  const FieldPath root;
  const FieldPath ids = root.Field("user_ids");
  EXPECT_EQ(ids.Index(2).ToString(), "user_ids[2]");
  EXPECT_EQ(ids.Index(2).TopLevelField(), "user_ids");
}

}  // namespace
}  // namespace userpilot::gateway
