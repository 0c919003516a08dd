"""Stage 4, field videos to per-animal distances, using chimpact.predict (never the reverse): raw
videos every second or at given times (videos), MegaDetector files (detections), a distance and
interval per detection (distances), contact sheets (annotate) and run_field.py's job (jobs)."""
