// Generated once with Python's `cryptography` AESGCM; do not edit.
const KAT_SEALED_HELLO: &str = "09bdc8de94b5af04a3d4580774a8748690165acdb0";
