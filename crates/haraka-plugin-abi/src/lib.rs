//! The versioned C ABI between haraka-rs and cdylib plugins.
