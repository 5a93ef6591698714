"""Audio format used everywhere in the media layer: 48 kHz mono s16 in 20 ms blocks.

48 kHz is Opus's native rate, so aiortc never resamples, and 20 ms matches the RTP ptime.
"""

SAMPLE_RATE = 48000
BLOCK = 960
CHANNELS = 1
