"""The embedded demo: a synthetic Kazakh two-domain corpus spoken by eSpeak NG (`espeak`, `channel`, `corpus`) and
the tiny random Whisper it trains by default (`tiny_whisper`)."""
