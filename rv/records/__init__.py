"""DICOM treatment records Verity builds (PS3.3 A.29, A.30, A.31, A.50)."""
