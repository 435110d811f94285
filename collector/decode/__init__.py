"""Record → store row: the pure decoding functions (rows), the decoding processes (pool),
and the correlation and redaction rules they apply."""

from sagascope.collector.decode.rows import DecodeContext, decode_message, decode_row, decode_span

__all__ = ["DecodeContext", "decode_message", "decode_row", "decode_span"]
