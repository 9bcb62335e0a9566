//! What the server enforces, stated in the OpenAPI description where the
//! handlers' derives cannot say it: the shapes of serials, product codes,
//! searches, cursors and dates, that a policy change names something, and
//! which fields a bulk action takes together. A generated client then
//! refuses what the server would refuse before it sends it; Schemathesis
//! checks that the server accepts whatever the description allows
//! (`scripts/schemathesis.sh`).

use serde_json::{Value, json};

/// No control character (Unicode category Cc, as `char::is_control`).
const NO_CONTROL: &str = r"^[^\u0000-\u001F\u007F-\u009F]*$";
const SERIAL: &str = r"^[^\u0000-\u001F\u007F-\u009F]{1,128}$";
const PRODUCT_CODE: &str = r"^[a-z0-9][a-z0-9_.-]{0,63}$";
/// Unpadded base64url of a position in a list ordered by serial.
const CURSOR: &str = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$";
/// The audit log's cursor: the id to continue before.
const ACTIVITY_CURSOR: &str = r"^[0-9]{1,18}$";
const NONCE: &str = r"^[\u0020-\u007E]{1,64}$";

pub fn state(doc: &mut Value) {
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            for operation in item.values_mut() {
                let Some(parameters) = operation.get_mut("parameters").and_then(Value::as_array_mut) else { continue };
                for parameter in parameters {
                    constrain_parameter(path, parameter);
                }
            }
        }
    }
    let schemas = &mut doc["components"]["schemas"];
    let check_in = &mut schemas["CheckInRequest"]["properties"];
    set(&mut check_in["product"], json!({"pattern": PRODUCT_CODE}));
    set(&mut check_in["serial"], json!({"pattern": SERIAL, "minLength": 1, "maxLength": 128}));
    set(&mut check_in["nonce"], json!({"type": "string", "pattern": NONCE}));
    // A change names at least one field, with a value: `null` for license
    // validity would change nothing.
    set(&mut schemas["PolicyUpdate"], json!({"minProperties": 1}));
    set(&mut schemas["PolicyUpdate"]["properties"]["license_days"], json!({"type": "integer"}));
    set(&mut schemas["PolicyUpdate"]["properties"]["lease_minutes"], json!({"type": "integer"}));
    schemas["PolicyUpdate"]["properties"]["seat_model"] = json!({"$ref": "#/components/schemas/SeatModel"});
    let release = &mut schemas["ReleaseRequest"]["properties"];
    set(&mut release["product"], json!({"pattern": PRODUCT_CODE}));
    set(&mut release["serial"], json!({"pattern": SERIAL, "minLength": 1, "maxLength": 128}));
    // Devices by `serials` or by `matching`, one of the two; a product for
    // assign and unassign, and only for them.
    let bulk = &mut schemas["BulkRequest"];
    set(&mut bulk["properties"]["serials"], json!({
        "type": "array", "minItems": 1, "maxItems": 10000,
        "items": {"type": "string", "pattern": SERIAL, "minLength": 1, "maxLength": 128},
    }));
    set(&mut bulk["properties"]["matching"], json!({"type": "string", "pattern": NO_CONTROL}));
    set(&mut bulk["properties"]["product"], json!({"type": "string", "pattern": PRODUCT_CODE}));
    set(bulk, json!({"allOf": [
        {"oneOf": [{"required": ["serials"]}, {"required": ["matching"]}]},
        {"oneOf": [
            {"properties": {"action": {"enum": ["assign", "unassign"]}}, "required": ["product"]},
            {"properties": {"action": {"enum": ["delete", "ignore"]}}, "not": {"required": ["product"]}},
        ]},
    ]}));
}

fn constrain_parameter(path: &str, parameter: &mut Value) {
    let (name, place) = (parameter["name"].as_str().unwrap_or_default().to_owned(), parameter["in"].as_str().unwrap_or_default().to_owned());
    let schema = &mut parameter["schema"];
    let activity = path.contains("/activity");
    let constraint = match (place.as_str(), name.as_str()) {
        ("path", "serial") => json!({"pattern": SERIAL, "minLength": 1, "maxLength": 128}),
        ("path", "code") => json!({"pattern": PRODUCT_CODE}),
        ("query", "cursor") if activity => json!({"pattern": ACTIVITY_CURSOR}),
        ("query", "cursor") => json!({"pattern": CURSOR}),
        ("query", "q" | "serial" | "product") => json!({"pattern": NO_CONTROL}),
        ("query", "since" | "until") => {
            *schema = json!({"anyOf": [
                {"type": "string", "format": "date"},
                {"type": "string", "format": "date-time"},
            ]});
            return;
        }
        _ => return,
    };
    set(schema, constraint);
}

/// Adds `fields` to a schema object, or makes it one.
fn set(schema: &mut Value, fields: Value) {
    if !schema.is_object() {
        *schema = json!({});
    }
    if let (Some(schema), Some(fields)) = (schema.as_object_mut(), fields.as_object()) {
        for (key, value) in fields {
            schema.insert(key.clone(), value.clone());
        }
    }
}
