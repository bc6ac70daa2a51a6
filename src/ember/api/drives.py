"""/drives/{drive_id} : block devices. PUT before boot, PATCH after; path id = body id."""

from ember.api.request import ApiRequest, checked_id, path_id_matches
from ember.vmm.config import Drive, DriveUpdate
from ember.vmm.controller import Action, PatchDrive, PutDrive

PATH = ("drives", "{id}")
METRIC = "drive"


def put(req: ApiRequest) -> Action:
    path_id = checked_id(req.tokens[1])
    drive = req.model(Drive.from_json)
    path_id_matches(path_id, drive.drive_id)
    return PutDrive(drive)


def patch(req: ApiRequest) -> Action:
    path_id = checked_id(req.tokens[1])
    update = req.model(DriveUpdate.from_json)
    path_id_matches(path_id, update.drive_id)
    return PatchDrive(update)


HANDLERS = {"PUT": put, "PATCH": patch}
