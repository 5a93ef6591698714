"""Media layer: audio/video sources and sinks, devices, DTMF, signal analysis.

Submodules are imported explicitly (``softphone.media.audio`` and so on) so that importing the
package itself never touches PortAudio or the camera.
"""

from softphone.media.errors import MediaUnavailable

__all__ = ["MediaUnavailable"]
