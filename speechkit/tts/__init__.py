"""Text-to-speech pieces shared by the acoustic model, the vocoder and synthesis: the log-mel
format both sides agree on (``mel``) and the phoneme front end (``text``)."""
