"""How image work fails: the kubelet's reasons and the one error that carries them.

``ImageStore.ensure`` and ``PullBackoff.check`` raise ``ImagePullError``; the pod
lifecycle copies ``reason`` and ``message`` into the container's waiting state.
"""

from __future__ import annotations

# the kubelet's container waiting reasons for images
ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACKOFF = "ImagePullBackOff"
ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
INVALID_IMAGE_NAME = "InvalidImageName"


class ImagePullError(Exception):
    """An image could not be made present; ``reason`` is the kubelet's word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
