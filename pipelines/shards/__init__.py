"""WebDataset shards in the schema of DESIGN §5: deterministic writing
(:mod:`~pipelines.shards.writer`), validated reading (:mod:`~pipelines.shards.reader`)."""

from pipelines.shards.reader import ShardFormatError, decode_sample, load_index, read_shards
from pipelines.shards.writer import encode_sample, write_shards

__all__ = ["ShardFormatError", "encode_sample", "write_shards", "read_shards", "decode_sample",
           "load_index"]
