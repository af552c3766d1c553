"""What people say about images: classification labels and shapes (boxes, polygons with holes, polylines,
points, keypoints, masks) with revisions and history, the labeler, the formats that move them in and out,
and the smart tool (SAM in a worker, GrabCut in the request)."""
