"""`yibao import`: CSV / Excel / Parquet exports -> contract Avro (docs/IMPORT.md)."""
