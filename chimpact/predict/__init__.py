"""Stage 3, from a model folder to predictions: the fold-averaged predictor with its test-time
views, test records, out-of-fold views and the SavedModel export (infer), and run_infer.py's job
(jobs)."""
