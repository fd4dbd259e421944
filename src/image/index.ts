/**
 * Public surface of the pure image layer: sniffing, header dimensions, bounded download,
 * preparation for Voxta. Knows neither Discord nor Voxta; never touches the disk.
 */
export { sniffImageType, readImageInfo, ImageError, IMAGE_TYPES, type ImageType, type ImageInfo, type ImageErrorReason } from './sniff.js';
export { prepareImage, PREPARE_DEFAULTS, type PrepareImageOptions, type PreparedImage, type OutputImageType } from './prepare.js';
export { fetchImage, FetchImageError, FETCH_IMAGE_DEFAULTS, type FetchImageOptions, type FetchedImage, type FetchImageErrorReason } from './fetch-image.js';
