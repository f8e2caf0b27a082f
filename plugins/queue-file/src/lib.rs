//! A queue plugin that stores each accepted message as a file (quickstart).
