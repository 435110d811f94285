"""Record → store row: the pure decoding functions (rows), the decoding processes (pool),
and the correlation and redaction rules they apply."""
