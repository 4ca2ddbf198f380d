"""Domain failures. ``code`` is the model's exception shape the API answers with."""


class DomainError(Exception):
    code = "ValidationException"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ValidationFailed(DomainError):
    code = "ValidationException"


class NotFound(DomainError):
    code = "ResourceNotFoundException"

    def __init__(self, message: str = "The requested resource does not exist, or access was denied."):
        super().__init__(message)


class InvalidState(DomainError):
    code = "InvalidStateException"


class AlreadyExists(DomainError):
    code = "ResourceAlreadyExistsException"


class LimitExceeded(DomainError):
    code = "LimitExceededException"


class InvalidNextToken(DomainError):
    code = "InvalidNextTokenException"
