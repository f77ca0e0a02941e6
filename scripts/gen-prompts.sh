#!/usr/bin/env bash
# Speaks every prompt of audio/prompts/catalog.tsv into audio/prompts/<lang>/<id>.ul: 8 kHz mono
# G.711 µ-law, raw, ready for package audio to embed and play frame by frame with no
# conversion on the phone. Needs espeak-ng and sox (Debian packages espeak-ng and sox).
#
# Run it after changing the catalogue and commit the audio together with the catalogue: the
# audio package tests fail while a text and its audio disagree (audio/prompts/generated.tsv
# records which text each file was spoken from).
set -euo pipefail

cd "$(dirname "$0")/.."
dir=audio/prompts
catalog=$dir/catalog.tsv

for tool in espeak-ng sox sha256sum; do
	command -v "$tool" >/dev/null || { echo "gen-prompts: $tool is required" >&2; exit 1; }
done

# Voices per catalogue language: American English, and Latin American Spanish because most
# Spanish-speaking callers in US facilities are from the Americas.
declare -A voice=([en]=en-us [es]=es-419)
# Words per minute: a little brisk, like an IVR, yet slower than espeak-ng's default of 175
# because the prompts reach the caller through a narrowband handset in a noisy room.
speed=160

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for lang in "${!voice[@]}"; do
	mkdir -p "$tmp/$lang"
done

die() { echo "gen-prompts: $catalog:$1: $2" >&2; exit 1; }

{
	echo "# Written by scripts/gen-prompts.sh: the SHA-256 of the catalogue text each audio file was"
	echo "# spoken from. Do not edit; run the script."
	printf 'id\tlang\ttext_sha256\n'
} >"$tmp/generated.tsv"

declare -A seen=()
lineno=0
header=
while IFS= read -r line || [[ -n $line ]]; do
	lineno=$((lineno + 1))
	[[ -z $line || $line == \#* ]] && continue
	[[ $line == *$'\r'* ]] && die "$lineno" "carriage return (save the file with Unix line endings)"
	if [[ -z $header ]]; then
		[[ $line == $'id\tlang\ttext' ]] || die "$lineno" "want the header id<TAB>lang<TAB>text"
		header=1
		continue
	fi
	[[ $line == *$'\t'*$'\t'* ]] || die "$lineno" "want 3 tab-separated fields"
	id=${line%%$'\t'*}
	rest=${line#*$'\t'}
	lang=${rest%%$'\t'*}
	text=${rest#*$'\t'}
	[[ $text == *$'\t'* ]] && die "$lineno" "more than 3 fields"
	[[ $id =~ ^[a-z0-9_]+$ ]] || die "$lineno" "bad id \"$id\""
	[[ -n ${voice[$lang]:-} ]] || die "$lineno" "unknown language \"$lang\""
	[[ -n $text ]] || die "$lineno" "empty text"
	[[ -z ${seen[$id/$lang]:-} ]] || die "$lineno" "$id/$lang repeats line ${seen[$id/$lang]}"
	seen[$id/$lang]=$lineno

	# -m: the text is SSML, so a greeting can switch voice mid-sentence.
	printf '%s' "$text" | espeak-ng -m -v "${voice[$lang]}" -s "$speed" -w "$tmp/speech.wav" --stdin
	# Trim the silence espeak-ng leaves at both ends (the call machine decides on pauses),
	# drop rumble the handset cannot play, resample, bring the peak to -3 dBFS, and encode.
	# -D: no dither, so that the files are the same on every run and silence stays silent.
	sox -V1 -D "$tmp/speech.wav" -t raw -r 8000 -c 1 -e u-law -b 8 "$tmp/$lang/$id.ul" \
		highpass 100 \
		silence 1 0.01 -45d reverse silence 1 0.01 -45d reverse \
		rate 8000 norm -3
	[[ -s $tmp/$lang/$id.ul ]] || die "$lineno" "$id/$lang came out empty"
	printf '%s\t%s\t%s\n' "$id" "$lang" "$(printf '%s' "$text" | sha256sum | cut -d' ' -f1)" >>"$tmp/generated.tsv"
done <"$catalog"

[[ -n $header ]] || die "$lineno" "no header"

# Replace the audio wholesale so that a prompt removed from the catalogue loses its file too.
shopt -s nullglob
for lang in "${!voice[@]}"; do
	mkdir -p "$dir/$lang"
	rm -f "$dir/$lang"/*.ul
	made=("$tmp/$lang"/*.ul)
	if ((${#made[@]})); then
		mv "${made[@]}" "$dir/$lang/"
	fi
done
mv "$tmp/generated.tsv" "$dir/generated.tsv"

echo "gen-prompts: ${#seen[@]} prompts, $(cat "$dir"/*/*.ul | wc -c) bytes of audio"
