"""Sans-I/O LISP logic: prefix tables, map-server, map-cache, xTR data plane, CoreCast."""
