"""Conventions every layer shares (data encoding, losses, scores, the plugin's class rasters).

``IGNORE_INDEX`` is the label of a pixel or sample without a class (nodata, unlabelled, outside a
polygon): the datasets write it, the segmentation loss and the scores skip it, and a class raster
written by the plugin uses it as nodata. It is 255 so that labels fit uint8 with up to 255 classes.
"""

IGNORE_INDEX = 255
