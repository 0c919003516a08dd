"""Stage 1, from videos to records: decoding (video), the frames folder and its manifest (frames,
extract), the label and box tables (labels, boxes), the sequence window (window), and the records
schema, manifest and writer (records, packing)."""
