from django.core.files.uploadhandler import TemporaryFileUploadHandler


class HashingSizeLimitedUploadHandler(TemporaryFileUploadHandler):
    pass
