"""Why the archive refuses an object: each carries the DICOM status a C-STORE answers with."""


class StoreError(Exception):
    """Base: `status` is the PS3.4 / PS3.7 status code, the message is the Error Comment."""

    status = 0xC000

    def __init__(self, comment: str) -> None:
        super().__init__(comment)
        self.comment = comment


class CannotUnderstand(StoreError):
    status = 0xC210  # PS3.4 B.2.3: Error, cannot understand


class DatasetMismatch(StoreError):
    status = 0xA900  # PS3.4 B.2.3: Error, data set does not match SOP class


class OutOfResources(StoreError):
    status = 0xA700  # PS3.4 B.2.3: Refused, out of resources


class DuplicateConflict(StoreError):
    status = 0x0111  # PS3.7 C.4: Duplicate SOP Instance (different object, same UID)


class TooLarge(StoreError):
    """A deflated data set that inflates past RV_DICOM_MAX_INFLATED: refused for good (not
    0xA7xx, which a sender retries). PS3.4 B.2.3: Cxxx, Error, cannot understand."""

    status = 0xC211
