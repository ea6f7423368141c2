/**
 * BBN / iNaturalist JSON annotation files (BBN-SPEC §5.2):
 * `{"annotations": [{"image_id", "fpath", "im_height", "im_width", "category_id"}, …], "num_classes"}`.
 *
 * The JSON is checked when loaded (format, category ids, 0-based contiguous classes); image files are
 * decoded (JPEG, PNG, …) with sharp when read, so a missing or corrupt image fails the batch that
 * needs it, with the file and annotation index in the message.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import sharp from 'sharp';
import { checkIndices, DataError, type ImageDataset, type ImageShape, type RawImage } from './api.ts';
import { listIds } from './long-tail.ts';

/** One annotation file, checked: absolute image paths and their labels. */
export interface InatAnnotations {
  /** The JSON file this came from. */
  readonly file: string;
  readonly numClasses: number;
  /** Absolute path of each image (`fpath` joined to the root unless absolute, as `os.path.join` does). */
  readonly paths: readonly string[];
  readonly labels: Int32Array;
}

function formatError(file: string, what: string): DataError {
  return new DataError(
    `${file} is not a BBN/iNaturalist annotation file: ${what}. Expected ` +
      '{"annotations": [{"fpath": …, "category_id": …}, …], "num_classes": N} (see tools/convert_from_iNat.py)',
    { file },
  );
}

/**
 * Reads and checks one annotation file. `root` is the directory relative `fpath`s are joined to.
 * Every `category_id` must be an integer in [0, num_classes); `requireAllClasses` (the training
 * file) also demands at least one image of every class, i.e. 0-based contiguous ids.
 */
export async function readInatAnnotations(
  file: string,
  root: string,
  requireAllClasses: boolean,
): Promise<InatAnnotations> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new DataError(
      `cannot read annotation file ${file} (${code}); check dataset.trainJson / dataset.valJson`,
      { file },
      { cause: err },
    );
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new DataError(`annotation file ${file} is not valid JSON: ${(err as Error).message}`, { file });
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw formatError(file, 'the top level is not an object');
  }
  const { annotations, num_classes: numClasses } = doc as { annotations?: unknown; num_classes?: unknown };
  if (!Array.isArray(annotations)) throw formatError(file, 'field "annotations" (an array) is missing');
  if (typeof numClasses !== 'number' || !Number.isInteger(numClasses) || numClasses < 2) {
    throw formatError(
      file,
      `field "num_classes" must be an integer >= 2 (a classifier needs two classes), got ${JSON.stringify(numClasses)}`,
    );
  }
  if (annotations.length === 0)
    throw formatError(file, 'field "annotations" is empty: the set has no images');
  const paths: string[] = new Array(annotations.length);
  const labels = new Int32Array(annotations.length);
  annotations.forEach((a: unknown, i) => {
    const rec = a as { fpath?: unknown; category_id?: unknown } | null;
    if (rec === null || typeof rec !== 'object') throw formatError(file, `annotation #${i} is not an object`);
    if (typeof rec.fpath !== 'string' || rec.fpath.length === 0) {
      throw formatError(file, `annotation #${i} has no "fpath" string`);
    }
    const y = rec.category_id;
    if (typeof y !== 'number' || !Number.isInteger(y) || y < 0 || y >= numClasses) {
      throw new DataError(
        `${file} annotation #${i}: category_id ${JSON.stringify(y)} is not an integer in [0, ${numClasses}) ` +
          '(num_classes); category ids must be 0-based class indices',
        { file, record: i },
      );
    }
    paths[i] = resolve(root, rec.fpath);
    labels[i] = y;
  });
  if (requireAllClasses) {
    const seen = new Uint8Array(numClasses);
    for (const y of labels) seen[y] = 1;
    const empty: number[] = [];
    seen.forEach((s, c) => {
      if (!s) empty.push(c);
    });
    if (empty.length > 0) {
      throw new DataError(
        `${file}: class${empty.length > 1 ? 'es' : ''} ${listIds(empty)} of num_classes ${numClasses} ` +
          `ha${empty.length > 1 ? 've' : 's'} no training image; category ids must be 0-based and contiguous ` +
          '(0..num_classes-1): remap them or lower num_classes',
        { file },
      );
    }
  }
  return { file, numClasses, paths, labels };
}

/** First line of a (possibly multi-line) library message. */
function firstLine(msg: string): string {
  return msg.split('\n')[0].trim();
}

/** Decodes one image file to RGB uint8 HWC (EXIF orientation applied, alpha dropped, grey expanded). */
export async function decodeImageFile(path: string, where: string): Promise<RawImage> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new DataError(
      `image ${path} (${where}) cannot be read (${code}); check dataset.root and the fpath`,
      {
        file: path,
      },
    );
  }
  try {
    const { data, info } = await sharp(bytes)
      .autoOrient()
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    const shape: ImageShape = [info.height, info.width, info.channels];
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), shape };
  } catch (err) {
    throw new DataError(
      `image ${path} (${where}) is corrupt or not an image: ${firstLine((err as Error).message)}; ` +
        'replace the file or drop its annotation',
      { file: path },
      { cause: err },
    );
  }
}

/** Images listed by an annotation file; decoded at full size on every read (no cache). */
export class InatDataset implements ImageDataset {
  readonly fixedShape = false;
  /** Nominal network input (the 224-px crop); files vary in size. */
  readonly imageShape: ImageShape = [224, 224, 3];
  readonly size: number;
  readonly numClasses: number;
  readonly labels: Int32Array;

  constructor(
    readonly name: string,
    private readonly ann: InatAnnotations,
  ) {
    this.size = ann.labels.length;
    this.numClasses = ann.numClasses;
    this.labels = ann.labels;
  }

  readImages(indices: ArrayLike<number>): Promise<RawImage[]> {
    checkIndices(this.name, this.size, indices);
    const jobs: Promise<RawImage>[] = [];
    for (let i = 0; i < indices.length; i++) {
      const k = indices[i];
      jobs.push(
        decodeImageFile(this.ann.paths[k], `annotation #${k} of ${this.ann.file}`).catch((err: unknown) => {
          if (err instanceof DataError) {
            throw new DataError(err.message, { file: err.file, record: k }, { cause: err.cause });
          }
          throw err;
        }),
      );
    }
    return Promise.all(jobs);
  }
}

/** The iNat train set (training JSON) and test set (validation JSON), both as given. */
export async function loadInat(
  trainJson: string,
  valJson: string,
  root: string,
): Promise<{ train: InatDataset; test: InatDataset }> {
  const [train, val] = await Promise.all([
    readInatAnnotations(trainJson, root, true),
    readInatAnnotations(valJson, root, false),
  ]);
  if (train.numClasses !== val.numClasses) {
    throw new DataError(
      `num_classes differs: ${train.numClasses} in ${trainJson} but ${val.numClasses} in ${valJson}; ` +
        'use the train and validation files of the same release',
      { file: valJson },
    );
  }
  return { train: new InatDataset('inat-train', train), test: new InatDataset('inat-val', val) };
}
