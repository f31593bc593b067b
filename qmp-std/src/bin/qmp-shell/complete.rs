//! Tab completion of command and argument names.
