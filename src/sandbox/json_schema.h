// JsonSchema: the JSON Schema subset sandbox-agent validates tool arguments with, before
// anything runs. A schema that uses a keyword outside the subset is refused when sandbox.yaml
// is loaded (naming the keyword and where it is), so that no rule is silently ignored.
// Semantics are draft 7's; the subset is checked against the JSON-Schema-Test-Suite
// (json_schema_test.cc). Supported:
//   true / false schemas; type (a name or a list); enum; const;
//   objects: properties, required, additionalProperties (a schema or a boolean),
//            minProperties, maxProperties;
//   arrays: items (one schema for every item), minItems, maxItems, uniqueItems;
//   strings: minLength, maxLength (in code points);
//   numbers: minimum, maximum, exclusiveMinimum, exclusiveMaximum, multipleOf;
//   annotations, ignored: title, description, default, examples, $schema, $id, $comment,
//            readOnly, writeOnly, deprecated, format.
// Plain code over values: no I/O; immutable after compile, safe to share between threads.
#pragma once

#include <boost/json/value.hpp>

#include <memory>
#include <optional>
#include <string>

namespace airlock::sandbox {

class JsonSchema {
 public:
  // Compiles `schema`. On failure `error` names the path in the schema and the problem, e.g.
  // "properties.id: keyword 'pattern' is not supported (supported: …)".
  static std::optional<JsonSchema> compile(const boost::json::value& schema, std::string& error);

  // On failure `error` names where in the instance and which rule, e.g.
  // "count: must be an integer (got a string)".
  bool validate(const boost::json::value& instance, std::string& error) const;

  struct Node;

 private:
  std::shared_ptr<const Node> root_;
};

// JSON equality as JSON Schema defines it (1 equals 1.0; objects ignore member order).
bool json_equal(const boost::json::value& a, const boost::json::value& b);

}  // namespace airlock::sandbox
